/*
 * json.c — machine-readable output (nd.h): JSON values built with json-c, with one rule
 * for numbers JSON cannot hold (NaN, infinities: null) and one way to write them.
 */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <string.h>

#include "nd.h"

/* Puts v (may be NULL: json-c's null) under key in o, or at the end of the array o. */
static void put(nd_json *o, const char *key, nd_json *v)
{
    if (!o) {
        json_object_put(v);
        return;
    }
    if (key) json_object_object_add(o, key, v);
    else json_object_array_add(o, v);
}

nd_json *nd_json_new(void) { return json_object_new_object(); }

nd_json *nd_json_obj(nd_json *parent, const char *key)
{
    nd_json *v = parent ? json_object_new_object() : NULL;
    put(parent, key, v);
    return v;
}

nd_json *nd_json_arr(nd_json *parent, const char *key)
{
    nd_json *v = parent ? json_object_new_array() : NULL;
    put(parent, key, v);
    return v;
}

void nd_json_u64(nd_json *o, const char *key, uint64_t v)
{
    if (o) put(o, key, json_object_new_uint64(v));
}

void nd_json_int(nd_json *o, const char *key, int64_t v)
{
    if (o) put(o, key, json_object_new_int64(v));
}

void nd_json_num(nd_json *o, const char *key, double v)
{
    if (!o) return;
    /* json-c writes NaN and Infinity as such, which no JSON parser takes: null instead.
     * The text is given, so that 0.1 prints as 0.1 and not as its 17-digit expansion. */
    if (!isfinite(v)) {
        put(o, key, NULL);
        return;
    }
    char text[32];
    snprintf(text, sizeof text, "%.10g", v);
    put(o, key, json_object_new_double_s(v, text));
}

void nd_json_bool(nd_json *o, const char *key, int v)
{
    if (o) put(o, key, json_object_new_boolean(v != 0));
}

void nd_json_str(nd_json *o, const char *key, const char *s)
{
    if (o) put(o, key, s ? json_object_new_string(s) : NULL);
}

int nd_json_write(nd_json *o, FILE *f, int pretty, const char *what, nd_error *e)
{
    int flags = JSON_C_TO_STRING_NOSLASHESCAPE |
                (pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : 0);
    const char *text = o ? json_object_to_json_string_ext(o, flags) : NULL;
    if (!text) return nd_error_set(e, -ENOMEM, "%s: out of memory", what);
    if (fputs(text, f) < 0 || fputc('\n', f) < 0 || fflush(f))
        return nd_error_set(e, -errno, "%s: %s", what, strerror(errno));
    return 0;
}

void nd_json_free(nd_json *o) { json_object_put(o); }
