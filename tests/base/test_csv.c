/*
 * test_csv.c — series CSV: a write/read round trip bit for bit (quoted class names,
 * values that need all 9 digits), what the header and rows look like, the liberties a
 * reader takes (CRLF, BOM, blank lines, spaces), and each malformed input reported at
 * its file:line:col: values that are not plain non-negative decimals up to what a bin
 * carries at 1 Tbit/s, class names that are not UTF-8.
 */
#include <errno.h>
#include <float.h>

#include "check.h"
#include "nd.h"
#include "tmpdir.h"

static void test_round_trip(void)
{
    const char *names[] = {"bytes_down", "bytes_up"};
    nd_dataset *ds = nd_dataset_new(2, names, 3, ND_NS_PER_SEC);
    CHECK(ds);
    CHECK_EQ(nd_dataset_class(ds, "web"), 0);
    CHECK_EQ(nd_dataset_class(ds, "video,hd"), 1);
    CHECK_EQ(nd_dataset_class(ds, "say \"hi\""), 2);
    uint32_t bits = 0x3f800001u; /* 1 + 2^-23: needs 9 significant digits */
    float tricky;
    memcpy(&tricky, &bits, 4);
    const float rows[4][6] = {
        {0, 1500, 3, 4, 5, 6},
        {tricky, 0.0f, FLT_MIN, 3.125e10f, 1e-7f, 123456789.0f}, /* 3.125e10: the most a
                                                                    250 ms bin carries */
        {0.1f, 0.2f, 0.3f, 16777217.0f, 2.5f, 1e10f},
        {1, 2, 3, 4, 5, 6},
    };
    for (int i = 0; i < 4; i++)
        CHECK_EQ(nd_dataset_append(ds, (uint16_t)(i % 3), 99, rows[i]), 0);

    const char *p = tmp_path("rt.csv");
    nd_error e = {0};
    if (nd_csv_write(ds, p, &e)) CHECK_FAIL_("write: %s", e.msg);
    size_t n;
    char *text = (char *)read_bytes(p, &n);
    CHECK(!strncmp(text,
                   "class,bytes_down_0,bytes_down_1,bytes_down_2,bytes_up_0,bytes_up_1,"
                   "bytes_up_2\nweb,0,1500,3,4,5,6\n\"video,hd\",",
                   strlen("class,bytes_down_0,bytes_down_1,bytes_down_2,bytes_up_0,bytes_up_1,"
                          "bytes_up_2\nweb,0,1500,3,4,5,6\n\"video,hd\",")));
    CHECK_CONTAINS(text, "\n\"say \"\"hi\"\"\",0.100000001,");
    free(text);

    nd_dataset *back = nd_csv_read(p, 250000000, &e);
    if (!back) CHECK_FAIL_("read: %s", e.msg);
    CHECK_EQ(back->n_channels, 2);
    CHECK_EQ(back->L, 3);
    CHECK_U64_EQ(back->bin_ns, 250000000);
    CHECK_STR_EQ(back->channel_names[0], "bytes_down");
    CHECK_STR_EQ(back->channel_names[1], "bytes_up");
    CHECK_U64_EQ(back->n_windows, 4);
    for (uint64_t i = 0; i < 4; i++) {
        CHECK_STR_EQ(back->class_names[back->labels[i]], ds->class_names[ds->labels[i]]);
        CHECK_U64_EQ(back->groups[i], i); /* the CSV has no groups: one per row */
    }
    if (memcmp(back->values, ds->values, sizeof rows)) {
        for (int k = 0; k < 24; k++)
            fprintf(stderr, "%d: %.9g vs %.9g\n", k, (double)ds->values[k],
                    (double)back->values[k]);
        CHECK_FAIL_("values differ after the round trip");
    }
    nd_dataset_free(back);
    nd_dataset_free(ds);

    /* Header only: a dataset with no windows. */
    write_bytes(p, "class,a_0\n", 10);
    back = nd_csv_read(p, 1, &e);
    CHECK(back);
    CHECK_U64_EQ(back->n_windows, 0);
    CHECK_EQ(back->L, 1);
    nd_dataset_free(back);

    /* What other tools write: CRLF, a BOM, blank lines, spaces around numbers, a file
     * without a final line break. */
    const char *lenient = "\xef\xbb\xbf"
                          "class,x_0,x_1\r\n\r\nweb, 1.5 ,2e3\r\n\n\"dns\",-0,7";
    write_bytes(p, lenient, strlen(lenient));
    back = nd_csv_read(p, ND_NS_PER_SEC, &e);
    if (!back) CHECK_FAIL_("%s", e.msg);
    CHECK_U64_EQ(back->n_windows, 2);
    CHECK_EQ(back->values[0], 1.5f);
    CHECK_EQ(back->values[1], 2000.0f);
    CHECK_EQ(back->values[3], 7.0f);
    CHECK_STR_EQ(back->class_names[1], "dns");
    nd_dataset_free(back);
}

static void expect_error(const char *text, const char *where, const char *what)
{
    const char *p = tmp_path("bad.csv");
    write_bytes(p, text, strlen(text));
    nd_error e = {0};
    nd_dataset *ds = nd_csv_read(p, ND_NS_PER_SEC, &e);
    if (ds) CHECK_FAIL_("read \"%s\", expected \"%s\"", text, what);
    char pos[600];
    snprintf(pos, sizeof pos, "%s:%s: ", p, where);
    CHECK_EQ(e.code, ND_EFORMAT);
    CHECK_CONTAINS(e.msg, pos);
    CHECK_CONTAINS(e.msg, what);
}

static void test_errors(void)
{
    /* Header. */
    expect_error("", "1:1", "empty file");
    expect_error("klass,a_0\n", "1:1", "first column is 'klass', expected 'class'");
    expect_error("class\n", "1:6", "header has no <channel>_<bin> columns");
    expect_error("class,a0\n", "1:7", "column 'a0' is not <channel>_<bin>");
    expect_error("class,a_\n", "1:7", "is not <channel>_<bin>");
    expect_error("class,_0\n", "1:7", "is not <channel>_<bin>");
    expect_error("class,a_01\n", "1:7", "is not <channel>_<bin>");
    expect_error("class,a_1\n", "1:7", "expected column '<channel>_0'");
    expect_error("class,a_0,a_2\n", "1:11", "expected column 'a_1'");
    expect_error("class,a_0,a_1,b_0\n", "1:18", "header ends early: expected column 'b_1'");
    expect_error("class,a_0,a_1,b_0,b_1,b_2\n", "1:23", "expected column '<next channel>_0'");
    expect_error("class,a_0,a_1,b_0,c_0\n", "1:19", "expected column 'b_1'");
    expect_error("class,a_0,b_0,a_0\n", "1:15", "channel 'a' appears twice");
    expect_error("class,a_0,\"b_0", "1:11", "unterminated quoted column name");
    expect_error("class,a_0,\"b_0\n", "1:15", "line break inside a quoted column name");
    expect_error("class,a_0,b\"_0\n", "1:12", "quote inside an unquoted column name");
    expect_error("class,a_0,b_0,c_0,d_0,e_0,f_0,g_0,h_0,i_0\n", "1:39", "more than 8 channels");
    /* Rows. */
    expect_error("class,a_0,a_1\nweb,1,2\nweb,1\n", "3:6",
                 "row has 1 values, the header has 2");
    expect_error("class,a_0,a_1\nweb\n", "2:4", "row has 0 values");
    expect_error("class,group,a_0\nweb,x1,2\n", "2:5",
                 "group 'x1' is not a whole number from 0 to 18446744073709551615");
    expect_error("class,group,a_0\nweb,18446744073709551616,2\n", "2:5", "group '1844");
    expect_error("class,group,a_0\nweb\n", "2:4",
                 "row ends after its class: expected its group");
    expect_error("class,a_0,group\n", "1:11", "column 'group' is not <channel>_<bin>");
    expect_error("class,a_0,a_1\nweb,1,2,3\n", "2:9",
                 "more values than the header's 2 columns");
    const char *plain = "is not a plain decimal number: expected a plain decimal number "
                        "from 0 to 1.25e+11 (a bin of 1 s at 1 Tbit/s)";
    expect_error("class,a_0,a_1\nweb,1,x\n", "2:7", "value 'x' (column a_1) is not a plain");
    expect_error("class,a_0,a_1\nweb,1,\n", "2:7", "value '' (column a_1) is not a plain");
    expect_error("class,a_0,a_1\nweb,1,2x\n", "2:7", "value '2x' (column a_1) is not a plain");
    expect_error("class,a_0,a_1\nweb,1,inf\n", "2:7",
                 "value 'inf' (column a_1) is not a plain");
    expect_error("class,a_0,a_1\nweb,nan,1\n", "2:5", plain);
    /* what strtod takes and a series value must not be: signs, hex, hex floats, values a
     * float loses, more than a bin carries at the fastest line */
    expect_error("class,a_0,a_1\nweb,-5,1\n", "2:5", "value '-5' (column a_0) is negative");
    expect_error("class,a_0,a_1\nweb,+5,1\n", "2:5", "value '+5' (column a_0) is not a plain");
    expect_error("class,a_0,a_1\nweb,1,0x10\n", "2:7", "value '0x10' (column a_1) is not a");
    expect_error("class,a_0,a_1\nweb,0x1p3,1\n", "2:5", "'0x1p3' (column a_0) is not a plain");
    expect_error("class,a_0,a_1\nweb,1,1e\n", "2:7", "value '1e' (column a_1) is not a plain");
    expect_error("class,a_0,a_1\nweb,1,.\n", "2:7", "value '.' (column a_1) is not a plain");
    expect_error("class,a_0,a_1\nweb,1, 1 2\n", "2:7", "value ' 1 2' (column a_1) is not a");
    expect_error(
        "class,a_0,a_1\nweb,1,1e-320\n", "2:7",
        "value '1e-320' (column a_1) is too small for a float (below 1e-38 and not 0)");
    expect_error("class,a_0,a_1\nweb,1,3.4e38\n", "2:7",
                 "value '3.4e38' (column a_1) is more than a bin can carry: expected a plain "
                 "decimal number from 0 to 1.25e+11 (a bin of 1 s at 1 Tbit/s)");
    expect_error("class,a_0,a_1\nweb,1,1e39\n", "2:7", "'1e39' (column a_1) is more than");
    expect_error("class,a_0,a_1\nweb,1,125000000001\n", "2:7", "is more than a bin can carry");
    /* invalid UTF-8 in a class name: a lone continuation byte, an overlong '/', a
     * surrogate, a truncated sequence, a code point past U+10FFFF; the column is the
     * field's */
    expect_error("class,a_0\nv\x80,1\n", "2:1", "class name is not valid UTF-8 (byte 2 of");
    expect_error("class,a_0\n\"x\xc0\xaf\",1\n", "2:1",
                 "not valid UTF-8 (byte 2 of the name, 0xc0)");
    expect_error("class,a_0\nok,1\n\xed\xa0\x80,1\n", "3:1", "not valid UTF-8 (byte 1");
    expect_error("class,a_0\nab\xe2\x82,1\n", "2:1",
                 "not valid UTF-8 (byte 3 of the name, 0xe2)");
    expect_error("class,a_0\n\xf4\x90\x80\x80,1\n", "2:1", "not valid UTF-8 (byte 1");
    expect_error("class,a_0,a_1\n,1,2\n", "2:1", "invalid class name ''");
    expect_error("class,a_0,a_1\n\"web\n", "2:5", "line break inside a quoted class name");
    expect_error("class,a_0,a_1\n\"web\"x,1,2\n", "2:6", "expected ',' or the end of the line");
    expect_error("class,a_0,a_1\nw\"b,1,2\n", "2:2", "quote inside an unquoted class name");
    expect_error("class,a_0\nweb,1\nok,2\n\"unterminated", "4:1",
                 "unterminated quoted class name");

    char longrow[200] = "class,a_0\n";
    memset(longrow + 10, 'n', 70);
    strcpy(longrow + 80, ",1\n");
    expect_error(longrow, "2:1", "class name is too long");

    /* From memory, NUL bytes included (they would cut a value short in strtof). */
    nd_error e = {0};
    static const char nul[] = "class,a_0\nweb,1\0\n";
    CHECK(!nd_csv_read_mem(nul, sizeof nul - 1, "mem.csv", 1, &e));
    CHECK_CONTAINS(e.msg, "mem.csv:2:6: NUL byte in a value");
    nd_dataset *m = nd_csv_read_mem("class,a_0\nweb,1", 15, "mem.csv", 1, &e);
    CHECK(m);
    CHECK_U64_EQ(m->n_windows, 1);
    nd_dataset_free(m);
    /* a group column: rows of one flow share a group; without it row k is group k */
    static const char grouped[] = "class,group,a_0\nweb,18446744073709551615,1\nweb,7,2\n"
                                  "dns,18446744073709551615,3\n";
    m = nd_csv_read_mem(grouped, sizeof grouped - 1, "grouped.csv", 1, &e);
    if (!m) CHECK_FAIL_("%s", e.msg);
    CHECK_U64_EQ(m->n_windows, 3);
    CHECK_U64_EQ(m->groups[0], UINT64_MAX);
    CHECK_U64_EQ(m->groups[1], 7);
    CHECK_U64_EQ(m->groups[2], UINT64_MAX);
    CHECK(m->values[2] == 3.0f && m->labels[2] == 1);
    nd_dataset_free(m);

    /* The edges of what is accepted: exactly the most a bin carries, "-0", valid UTF-8 of
     * every length, values written with an exponent as %.9g writes them. */
    static const char edges[] = "class,a_0,a_1\nvid\xc3\xa9o \xe2\x82\xac\xf0\x9f\x98\x80,"
                                "125000000000,-0\nx,1.5e+09,0.000001\n";
    m = nd_csv_read_mem(edges, sizeof edges - 1, "edges.csv", ND_NS_PER_SEC, &e);
    if (!m) CHECK_FAIL_("%s", e.msg);
    CHECK_STR_EQ(m->class_names[0], "vid\xc3\xa9o \xe2\x82\xac\xf0\x9f\x98\x80");
    CHECK(m->values[0] == 125000000000.0f && m->values[1] == 0 && !signbit(m->values[1]));
    CHECK(m->values[2] == 1.5e9f && m->values[3] == 0.000001f);
    nd_dataset_free(m);
    /* the most a bin carries follows the bin width: 1 ms carries 1.25e8 bytes */
    CHECK(!nd_csv_read_mem(edges, sizeof edges - 1, "edges.csv", ND_NS_PER_SEC / 1000, &e));
    CHECK_CONTAINS(e.msg, "edges.csv:2:16: value '125000000000' (column a_0) is more than a "
                          "bin can carry: expected a plain decimal number from 0 to 1.25e+08 "
                          "(a bin of 0.001 s at 1 Tbit/s)");

    /* Not a CSV problem: the file itself. */
    CHECK(!nd_csv_read(tmp_path("missing.csv"), 1, &e));
    CHECK_EQ(e.code, -ENOENT);
    CHECK_CONTAINS(e.msg, "missing.csv: cannot open");
    CHECK(!nd_csv_read(tmp_dir(), 1, &e));
    CHECK_EQ(e.code, -EISDIR);
    /* Writing into a directory that does not exist leaves nothing. */
    const char *names[] = {"a"};
    nd_dataset *ds = nd_dataset_new(1, names, 1, 1);
    CHECK_EQ(nd_csv_write(ds, "/nonexistent-nd-dir/x.csv", &e), -ENOENT);
    CHECK_CONTAINS(e.msg, "/nonexistent-nd-dir/x.csv");
    nd_dataset_free(ds);
}

int main(void)
{
    test_round_trip();
    test_errors();
    printf("csv: ok\n");
    return 0;
}
