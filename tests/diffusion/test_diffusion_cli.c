/*
 * test_diffusion_cli.c — train, sample, eval, render and inspect as a person runs them,
 * on a tiny imported dataset: outputs exist and read back, --resume continues, Ctrl-C
 * saves a resumable model and exits 0 (also during the end calibration, which it
 * skips), and mistakes give exit 2 (usage) or 1 (bad file) with a message naming the
 * problem.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/tmpdir.h"
#include "check.h"
#include "nd.h"
#include "run_cli.h"
#include "tiny_cli.h"

static char P[16][512];
static const char *path(int i, const char *name)
{
    snprintf(P[i], sizeof P[i], "%s", tmp_path(name));
    return P[i];
}

int main(void)
{
    const char *csv = path(0, "real.csv"), *ndd = path(1, "real.ndd"),
               *conf = path(2, "tiny.yaml");
    const char *model = path(3, "m.ndm"), *scsv = path(4, "synth.csv"),
               *sndd = path(5, "synth.ndd");
    const char *png = path(6, "synth.png"), *rpng = path(7, "real.png"),
               *bad = path(8, "bad.ndm");
    tiny_cli_csv(csv);
    tiny_cli_conf(conf, 30, "");
    EXPECT(0, "import", "--format", "csv", csv, "-o", ndd);

    /* usage mistakes: exit 2 */
    EXPECT(2, "train", ndd, "-o", model);
    CHECK_CONTAINS(err_text, "no config");
    EXPECT(2, "train", "-c", conf, ndd);
    EXPECT(2, "train", "-c", conf, ndd, "-o", model, "--steps", "x");
    EXPECT(2, "train", "-c", conf, ndd, "-o", model, "--set", "model.prediction=x0");
    CHECK_CONTAINS(err_text, "model.prediction");
    EXPECT(1, "train", "-c", conf, "missing.ndd", "-o", model);
    CHECK_CONTAINS(err_text, "missing.ndd");

    EXPECT(0, "train", "-c", conf, ndd, "-o", model, "--steps", "20");
    CHECK_CONTAINS(err_text, "at step 20");
    EXPECT(0, "train", ndd, "-o", model, "--resume");
    CHECK_CONTAINS(err_text, "from step 20 to 30");
    EXPECT(0, "inspect", model);
    CHECK_CONTAINS(out_text, "training: 30 steps");
    CHECK_CONTAINS(out_text, "video");
    /* train fitted the decode calibration for the stored sampler setting (ddim, 5) */
    CHECK_CONTAINS(out_text,
                   "decode calibration: 64 windows per class at step 30 (ddim 5 steps");
    /* sampling settings may change on a resume (nothing else): stored, calibrated for */
    EXPECT(0, "train", ndd, "-o", model, "--resume", "--set", "sample.sampler=dpmpp", "--set",
           "sample.calibrate=8", "--set", "model.decode=lsq", "--set", "train.lr=1");
    CHECK_CONTAINS(err_text, "other keys than sample.* and model.decode");
    EXPECT(0, "inspect", model);
    CHECK_CONTAINS(out_text,
                   "decode calibration: 8 windows per class at step 30 (dpmpp 5 steps");
    CHECK_CONTAINS(out_text, "decode lsq");
    /* other settings: fitted once, stored beside the defaults, reused */
    EXPECT(0, "sample", model, "--count", "2", "--csv", scsv, "--sampler", "ddim", "--steps",
           "3");
    CHECK_CONTAINS(err_text, "calibrating the decode for these settings");
    CHECK_CONTAINS(err_text, "stored the calibration for these settings");
    EXPECT(0, "sample", model, "--count", "2", "--csv", scsv, "--sampler", "ddim", "--steps",
           "3");
    CHECK(!strstr(err_text, "calibrating"));
    CHECK_CONTAINS(err_text, "ddim, 3 steps, guidance 2, clip none, GASF projection, "
                             "calibrated decode");
    EXPECT(0, "sample", model, "--count", "2", "--csv", scsv); /* the defaults' own */
    CHECK(!strstr(err_text, "calibrating"));
    EXPECT(0, "inspect", model);
    CHECK_CONTAINS(out_text,
                   "decode calibration: 8 windows per class at step 30 (dpmpp 5 steps");
    CHECK_CONTAINS(out_text, "also fitted, for other sampling settings: 8 windows per class "
                             "(ddim 3 steps");
    EXPECT(0, "sample", model, "--count", "2", "--csv", scsv, "--calibrate", "0");
    CHECK_CONTAINS(err_text, "uncalibrated decode");
    EXPECT(2, "sample", model, "--count", "2", "--csv", scsv, "--calibrate", "-3");
    CHECK_CONTAINS(err_text, "--calibrate");

    EXPECT(0, "sample", model, "--count", "3", "--csv", scsv, "--ndd", sndd, "--png", png,
           "--sampler", "dpmpp", "--seed", "4");
    CHECK_CONTAINS(err_text, ", calibrated decode");
    nd_error e = {0};
    nd_dataset *s = nd_csv_read(scsv, ND_NS_PER_SEC, &e);
    if (!s) CHECK_FAIL_("%s", e.msg);
    CHECK_U64_EQ(s->n_windows, 6);
    CHECK_EQ(s->L, 8);
    for (uint64_t i = 0; i < s->n_windows * 16; i++)
        CHECK(s->values[i] >= 0 && isfinite(s->values[i]));
    nd_dataset_free(s);
    s = nd_dataset_load(sndd, &e);
    CHECK(s);
    CHECK_U64_EQ(s->n_windows, 6);
    nd_dataset_free(s);
    size_t len;
    unsigned char *pngb = read_bytes(png, &len);
    CHECK(pngb && len > 100 && !memcmp(pngb, "\x89PNG", 4));
    free(pngb);
    const char *dcsv = path(9, "diag.csv");
    EXPECT(0, "sample", model, "--count", "2", "--class", "web", "--csv", scsv, "--sampler",
           "ddpm", "--csv-other-decode", dcsv);
    s = nd_csv_read(dcsv, ND_NS_PER_SEC, &e);
    CHECK(s);
    CHECK_U64_EQ(s->n_windows, 2);
    nd_dataset_free(s);
    EXPECT(2, "sample", model, "--count", "2", "--class", "mail", "--csv", scsv);
    CHECK_CONTAINS(err_text, "mail");
    EXPECT(2, "sample", model, "--count", "2", "--csv", scsv, "--sampler", "euler");
    EXPECT(2, "sample", model, "--csv", scsv);

    EXPECT(0, "render", ndd, "--png", rpng, "--count", "2");
    /* real and synthetic side by side; the eval picture beside the report */
    const char *both = path(9, "both.png"), *epng = path(9, "eval.png");
    EXPECT(0, "render", ndd, "--synth", scsv, "--png", both, "--count", "2");
    pngb = read_bytes(both, &len);
    CHECK(pngb && len > 100 && !memcmp(pngb, "\x89PNG", 4));
    free(pngb);
    EXPECT(0, "eval", "--real", csv, "--synth", scsv, "--train", csv, "--cnn-steps", "5",
           "--png", epng);
    CHECK_CONTAINS(out_text, "MEAN");
    CHECK_CONTAINS(out_text, "memorisation");
    pngb = read_bytes(epng, &len);
    CHECK(pngb && len > 100 && !memcmp(pngb, "\x89PNG", 4));
    free(pngb);
    EXPECT(2, "eval", "--real", csv);
    /* windows of another length cannot share the picture's axes */
    const char *shortcsv = path(9, "short.csv");
    FILE *f = fopen(shortcsv, "w");
    CHECK(f);
    fputs("class,bytes_down_0,bytes_down_1,bytes_up_0,bytes_up_1\nweb,1,2,3,4\n", f);
    fclose(f);
    EXPECT(2, "render", ndd, "--synth", shortcsv, "--png", both);
    CHECK_CONTAINS(err_text, "cannot share axes");

    /* the raw model beside the decoded output: --raw-csv decodes the very images of --csv
     * with the calibration off, so it is what --calibrate 0 gives for the same seed */
    const char *rawcsv = path(9, "raw.csv"), *offcsv = path(9, "off.csv");
    EXPECT(0, "sample", model, "--count", "3", "--csv", scsv, "--raw-csv", rawcsv, "--seed",
           "7");
    EXPECT(0, "sample", model, "--count", "3", "--csv", offcsv, "--calibrate", "0", "--seed",
           "7");
    size_t rlen, olen;
    unsigned char *rb = read_bytes(rawcsv, &rlen), *ob = read_bytes(offcsv, &olen);
    CHECK(rb && ob && rlen == olen && !memcmp(rb, ob, rlen));
    free(rb), free(ob);
    EXPECT(0, "eval", "--real", csv, "--synth", scsv, "--raw", rawcsv, "--train", csv,
           "--cnn-steps", "0");
    CHECK_CONTAINS(out_text, "MEAN             raw");
    CHECK_CONTAINS(out_text, "TSTR raw");
    CHECK_CONTAINS(out_text, "memorisation (raw)");

    /* distillation: an eps-prediction teacher is refused; a v one gives a student that
     * samples as an ordinary model, says how it was made, and resumes */
    const char *vmodel = path(11, "v.ndm"), *student = path(12, "student.ndm");
    EXPECT(2, "train", ndd, "-o", student, "--distill", model);
    CHECK_CONTAINS(err_text, "model.prediction: v");
    EXPECT(0, "train", "-c", conf, ndd, "-o", vmodel, "--steps", "20", "--set",
           "model.prediction=v");
    EXPECT(2, "train", ndd, "-o", student, "--distill", vmodel, "--resume");
    EXPECT(2, "train", ndd, "-o", student, "--student-steps", "2");
    CHECK_CONTAINS(err_text, "go with --distill");
    EXPECT(2, "train", ndd, "-o", student, "--distill", vmodel, "--round-steps", "0");
    EXPECT(2, "train", ndd, "-o", student, "--distill", vmodel, "--teacher-steps", "12");
    CHECK_CONTAINS(err_text, "do not halve");
    EXPECT(0, "train", ndd, "-o", student, "--distill", vmodel, "--teacher-steps", "8",
           "--student-steps", "2", "--round-steps", "3", "--steps", "25");
    CHECK_CONTAINS(err_text, "into a DDIM student of 2 steps in 2 rounds of 3 steps");
    EXPECT(0, "train", ndd, "-o", student, "--resume");
    CHECK_CONTAINS(err_text, "from step 25 to 26");
    EXPECT(0, "inspect", student);
    CHECK_CONTAINS(out_text, "distilled: from step 20 of the teacher (ddim 5 steps");
    CHECK_CONTAINS(out_text, "DDIM 8 -> 2 steps in 2 rounds of 3 steps");
    CHECK_CONTAINS(out_text, "weights of round 1 (2 steps)");
    EXPECT(0, "inspect", student, "--json");
    CHECK_CONTAINS(out_text, "\"distilled\"");
    CHECK_CONTAINS(out_text, "\"guidance_input\": true");
    EXPECT(0, "inspect", student);
    CHECK_CONTAINS(out_text, "guidance: an input, 1 to 4 (default 2)");
    /* the teacher's scale by default, any other in the range, none outside it */
    EXPECT(0, "sample", student, "--count", "2", "--csv", scsv);
    CHECK_CONTAINS(err_text, "ddim, 2 steps, guidance 2");
    EXPECT(0, "sample", student, "--count", "2", "--csv", scsv, "--guidance", "3.5");
    CHECK_CONTAINS(err_text, "ddim, 2 steps, guidance 3.5");
    EXPECT(2, "sample", student, "--count", "2", "--csv", scsv, "--guidance", "5");
    CHECK_CONTAINS(err_text, "guidance 5: this student learnt guidance 1 to 4 only");
    EXPECT(2, "train", ndd, "-o", student, "--distill", vmodel, "--guidance-range", "3");
    CHECK_CONTAINS(err_text, "--guidance-range 3: expected LO,HI");
    EXPECT(2, "train", ndd, "-o", student, "--distill", vmodel, "--guidance-range", "3,4");
    CHECK_CONTAINS(err_text, "guidance range 3 to 4");

    /* a corrupt model: exit 1 naming the file */
    unsigned char *m = read_bytes(model, &len);
    CHECK(m && len > 1000);
    m[len - 10] ^= 1;
    f = fopen(bad, "wb");
    fwrite(m, 1, len, f);
    fclose(f);
    free(m);
    EXPECT(1, "sample", bad, "--count", "1", "--csv", scsv);
    CHECK_CONTAINS(err_text, bad);

    /* Ctrl-C: saved, exit 0, resumable */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int o = open("/dev/null", O_WRONLY);
        dup2(o, 1);
        dup2(o, 2);
        execl(ND_BINARY, ND_BINARY, "train", "-c", conf, ndd, "-o", model, "--steps", "1000000",
              (char *)NULL);
        _exit(127);
    }
    usleep(1500 * 1000);
    kill(pid, SIGINT);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
    EXPECT(0, "inspect", model);
    EXPECT(0, "train", ndd, "-o", model, "--resume", "--minutes", "0.01");

    /* Ctrl-C during the end calibration (here one that would take hours): skipped, the
     * trained model kept, exit 0 */
    const char *log = path(10, "train.log");
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        int o = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1);
        dup2(o, 2);
        execl(ND_BINARY, ND_BINARY, "train", "-c", conf, ndd, "-o", model, "--steps", "3",
              "--set", "sample.calibrate=100000", (char *)NULL);
        _exit(127);
    }
    char *text = NULL;
    for (int i = 0; i < 600 && !(text && strstr(text, "calibrating")); i++) {
        usleep(100 * 1000);
        free(text);
        text = (char *)read_bytes(log, &len);
    }
    CHECK(text && strstr(text, "calibrating"));
    free(text);
    kill(pid, SIGINT);
    /* a generous bound, so that a calibration that ignores the signal fails here
     * instead of running for hours */
    int done = 0;
    for (int i = 0; i < 600 && !done; i++) {
        usleep(100 * 1000);
        done = waitpid(pid, &st, WNOHANG) == pid;
    }
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        CHECK_FAIL_("train went on calibrating after SIGINT");
    }
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
    text = (char *)read_bytes(log, &len);
    CHECK(text && strstr(text, "calibration skipped"));
    free(text);
    EXPECT(0, "inspect", model);
    CHECK_CONTAINS(out_text, "3 steps");
    EXPECT(0, "sample", model, "--count", "2", "--csv", scsv, "--calibrate", "0");
    return 0;
}
