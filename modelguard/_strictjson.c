/* Strict JSON decoding for modelguard's hot path.
 *
 * One pass over the body that both validates it (I-JSON: strict UTF-8, no BOM, no NaN or
 * Infinity, numbers within double range, no lone surrogates, bounded nesting, no duplicate keys
 * in any object) and builds the Python values the verdict reads. Long strings under "bulky"
 * keys (text, base64 data, signatures, ...) are validated but not materialized: the caller gets
 * a shared empty LongString (a str subclass), or for keys whose prefix matters (a data: URL) a
 * LongString holding only the part up to the first comma, so a 2 MB image costs no second copy.
 *
 * The pure-Python fallback in body.py (jiter plus a tree walk) accepts and refuses exactly the
 * same inputs; the tests compare the two.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef struct {
    const unsigned char *start;
    const unsigned char *p;
    const unsigned char *end;
    int depth;
    int max_depth;
    Py_ssize_t keep;          /* strings under bulky keys longer than this are not kept whole */
    PyObject *bulky;          /* dict: key name -> 1 (drop long values) or 2 (keep their head) */
    PyObject *long_type;      /* the LongString class */
    PyObject *dropped;        /* the shared LongString standing for a dropped value */
    char *buf;                /* scratch for unescaping */
    Py_ssize_t buf_cap;
} Parser;

static PyObject *StrictError;

static void *
fail(Parser *ps, const char *what)
{
    if (!PyErr_Occurred()) {
        PyErr_Format(StrictError, "%s at byte %zd", what, (Py_ssize_t)(ps->p - ps->start));
    }
    return NULL;
}

static inline void
skip_ws(Parser *ps)
{
    while (ps->p < ps->end) {
        unsigned char c = *ps->p;
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            ps->p++;
        } else {
            break;
        }
    }
}

static PyObject *parse_value(Parser *ps, int bulky);

/* Length of a valid UTF-8 sequence starting at p (p[0] >= 0x80), or 0 if invalid. */
static inline int
utf8_seq(const unsigned char *p, const unsigned char *end, Py_UCS4 *cp)
{
    unsigned char c = p[0];
    if (c >= 0xC2 && c <= 0xDF) {
        if (end - p < 2 || (p[1] & 0xC0) != 0x80) return 0;
        *cp = ((Py_UCS4)(c & 0x1F) << 6) | (p[1] & 0x3F);
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0;          /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0;         /* UTF-16 surrogate */
        *cp = ((Py_UCS4)(c & 0x0F) << 12) | ((Py_UCS4)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;          /* overlong */
        if (c == 0xF4 && p[1] >= 0x90) return 0;         /* above U+10FFFF */
        *cp = ((Py_UCS4)(c & 0x07) << 18) | ((Py_UCS4)(p[1] & 0x3F) << 12) |
              ((Py_UCS4)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
        return 4;
    }
    return 0;
}

/* Advance over plain ASCII string bytes (no quote, backslash, control or high byte). */
static inline const unsigned char *
scan_plain(const unsigned char *p, const unsigned char *end)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i slash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        /* signed compare: bytes >= 0x80 are negative, so < 0x20 catches them too */
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)),
                                 _mm_cmplt_epi8(v, space));
        int mask = _mm_movemask_epi8(m);
        if (mask) {
            return p + __builtin_ctz((unsigned)mask);
        }
        p += 16;
    }
#endif
    while (p < end) {
        unsigned char c = *p;
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        p++;
    }
    return p;
}

static int
grow(Parser *ps, Py_ssize_t need)
{
    if (need <= ps->buf_cap) return 0;
    Py_ssize_t cap = ps->buf_cap ? ps->buf_cap : 256;
    while (cap < need) cap *= 2;
    char *buf = PyMem_Realloc(ps->buf, (size_t)cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    ps->buf = buf;
    ps->buf_cap = cap;
    return 0;
}

static inline int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int
read_hex4(Parser *ps, Py_UCS4 *out)
{
    if (ps->end - ps->p < 4) return -1;
    Py_UCS4 v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(ps->p[i]);
        if (h < 0) return -1;
        v = (v << 4) | (Py_UCS4)h;
    }
    ps->p += 4;
    *out = v;
    return 0;
}

static Py_ssize_t
put_utf8(char *out, Py_UCS4 cp)
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

/* A long bulky string: mode 1, the shared stand-in; mode 2 (a URL whose data: prefix is read),
 * everything up to its first comma as a LongString, or the whole string if it has none, so the
 * reader sees exactly what it would see in the full text. */
static PyObject *
cut_string(Parser *ps, const char *text, Py_ssize_t n, int mode)
{
    if (mode == 1) {
        Py_INCREF(ps->dropped);
        return ps->dropped;
    }
    const char *comma = memchr(text, ',', (size_t)n);
    if (comma == NULL) {
        return PyUnicode_DecodeUTF8(text, n, "strict");
    }
    PyObject *head = PyUnicode_DecodeUTF8(text, comma + 1 - text, "strict");
    if (head == NULL) return NULL;
    PyObject *res = PyObject_CallOneArg(ps->long_type, head);
    Py_DECREF(head);
    return res;
}

/* Keys repeat ("type", "text", "role"): plain ASCII keys come from a small cache, with their
 * hash already computed. Direct-mapped; a miss just builds the string. */
#define KEY_CACHE_SIZE 512
#define KEY_CACHE_MAX_LEN 32
static PyObject *key_cache[KEY_CACHE_SIZE];

static PyObject *
cached_key(const unsigned char *text, Py_ssize_t n)
{
    uint32_t h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++) h = (h ^ text[i]) * 16777619u;
    PyObject **slot = &key_cache[h & (KEY_CACHE_SIZE - 1)];
    PyObject *hit = *slot;
    if (hit != NULL && PyUnicode_GET_LENGTH(hit) == n && memcmp(PyUnicode_DATA(hit), text, (size_t)n) == 0) {
        Py_INCREF(hit);
        return hit;
    }
    PyObject *s = PyUnicode_New(n, 127);
    if (s == NULL) return NULL;
    memcpy(PyUnicode_DATA(s), text, (size_t)n);
    if (PyObject_Hash(s) == -1) { Py_DECREF(s); return NULL; }
    Py_XSETREF(*slot, Py_NewRef(s));
    return s;
}

/* Parse a string; ps->p is just past the opening quote. With mode 1 or 2 and a decoded text
 * longer than `cut` bytes, the text is validated but not kept (see cut_string). A key
 * (mode -1) may come from the key cache. */
static PyObject *
parse_string(Parser *ps, Py_ssize_t cut, int mode)
{
    const unsigned char *begin = ps->p;
    const unsigned char *p = begin;
    const unsigned char *end = ps->end;
    int ascii = 1;
    /* fast path: no escapes */
    for (;;) {
        p = scan_plain(p, end);
        if (p >= end) { ps->p = p; return fail(ps, "unterminated string"); }
        unsigned char c = *p;
        if (c == '"') {
            ps->p = p + 1;
            Py_ssize_t n = p - begin;
            if (mode > 0 && n > cut) {
                return cut_string(ps, (const char *)begin, n, mode);
            }
            if (ascii && mode < 0 && n <= KEY_CACHE_MAX_LEN) {
                return cached_key(begin, n);
            }
            if (ascii) {
                PyObject *s = PyUnicode_New(n, 127);
                if (s == NULL) return NULL;
                memcpy(PyUnicode_DATA(s), begin, (size_t)n);
                return s;
            }
            return PyUnicode_DecodeUTF8((const char *)begin, n, "strict");
        }
        if (c == '\\') break;
        if (c < 0x20) { ps->p = p; return fail(ps, "control character in string"); }
        Py_UCS4 cp;
        int len = utf8_seq(p, end, &cp);
        if (len == 0) { ps->p = p; return fail(ps, "invalid UTF-8"); }
        ascii = 0;
        p += len;
    }
    /* slow path: unescape into the scratch buffer */
    Py_ssize_t outlen = p - begin;
    if (grow(ps, outlen + 64) < 0) return NULL;
    memcpy(ps->buf, begin, (size_t)outlen);
    ps->p = p;
    for (;;) {
        if (ps->p >= end) return fail(ps, "unterminated string");
        unsigned char c = *ps->p;
        if (c == '"') { ps->p++; break; }
        if (grow(ps, outlen + 8) < 0) return NULL;
        if (c == '\\') {
            ps->p++;
            if (ps->p >= end) return fail(ps, "unterminated string");
            unsigned char e = *ps->p++;
            Py_UCS4 cp;
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (read_hex4(ps, &cp) < 0) return fail(ps, "bad \\u escape");
                if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(ps, "lone surrogate escape");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    Py_UCS4 lo;
                    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                        return fail(ps, "lone surrogate escape");
                    }
                    ps->p += 2;
                    if (read_hex4(ps, &lo) < 0) return fail(ps, "bad \\u escape");
                    if (lo < 0xDC00 || lo > 0xDFFF) return fail(ps, "lone surrogate escape");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                break;
            default:
                ps->p--;
                return fail(ps, "bad escape");
            }
            outlen += put_utf8(ps->buf + outlen, cp);
        } else if (c < 0x20) {
            return fail(ps, "control character in string");
        } else if (c < 0x80) {
            ps->buf[outlen++] = (char)c;
            ps->p++;
        } else {
            Py_UCS4 cp;
            int len = utf8_seq(ps->p, end, &cp);
            if (len == 0) return fail(ps, "invalid UTF-8");
            memcpy(ps->buf + outlen, ps->p, (size_t)len);
            outlen += len;
            ps->p += len;
        }
    }
    if (mode > 0 && outlen > cut) {
        return cut_string(ps, ps->buf, outlen, mode);
    }
    return PyUnicode_DecodeUTF8(ps->buf, outlen, "strict");
}

static PyObject *
parse_number(Parser *ps)
{
    const unsigned char *begin = ps->p;
    const unsigned char *p = begin;
    const unsigned char *end = ps->end;
    int neg = 0, is_float = 0;
    if (p < end && *p == '-') { neg = 1; p++; }
    if (p >= end) { ps->p = p; return fail(ps, "bad number"); }
    const unsigned char *digits = p;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') p++;
    } else {
        ps->p = p;
        return fail(ps, "unexpected character");
    }
    Py_ssize_t ndigits = p - digits;
    if (p < end && *p == '.') {
        is_float = 1;
        p++;
        if (p >= end || *p < '0' || *p > '9') { ps->p = p; return fail(ps, "bad number"); }
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        is_float = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') { ps->p = p; return fail(ps, "bad number"); }
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    ps->p = p;
    if (!is_float && ndigits <= 18) {
        long long v = 0;
        for (const unsigned char *q = digits; q < p; q++) v = v * 10 + (*q - '0');
        return PyLong_FromLongLong(neg ? -v : v);
    }
    Py_ssize_t n = p - begin;
    if (!is_float && ndigits > 400) return fail(ps, "number outside double range");
    char small[128];
    char *text = small;
    if (n >= (Py_ssize_t)sizeof(small)) {
        text = PyMem_Malloc((size_t)n + 1);
        if (text == NULL) return PyErr_NoMemory();
    }
    memcpy(text, begin, (size_t)n);
    text[n] = '\0';
    PyObject *res;
    if (is_float) {
        double d = PyOS_string_to_double(text, NULL, NULL);
        if (d == -1.0 && PyErr_Occurred()) {
            res = NULL;
        } else if (isinf(d)) {
            res = fail(ps, "number outside double range");
        } else {
            res = PyFloat_FromDouble(d);
        }
    } else {
        res = PyLong_FromString(text, NULL, 10);
        if (res != NULL) {
            double d = PyLong_AsDouble(res);
            if (d == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                Py_DECREF(res);
                res = fail(ps, "number outside double range");
            }
        }
    }
    if (text != small) PyMem_Free(text);
    return res;
}

static int
expect_literal(Parser *ps, const char *word, Py_ssize_t n)
{
    if (ps->end - ps->p < n || memcmp(ps->p, word, (size_t)n) != 0) {
        fail(ps, "unexpected character");
        return -1;
    }
    ps->p += n;
    return 0;
}

static PyObject *
parse_object(Parser *ps)
{
    if (++ps->depth > ps->max_depth) return fail(ps, "nesting too deep");
    ps->p++;  /* '{' */
    PyObject *dict = PyDict_New();
    if (dict == NULL) return NULL;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        ps->depth--;
        return dict;
    }
    Py_ssize_t members = 0;
    for (;;) {
        if (ps->p >= ps->end || *ps->p != '"') { Py_DECREF(dict); return fail(ps, "expected a key"); }
        ps->p++;
        PyObject *key = parse_string(ps, 0, -1);
        if (key == NULL) { Py_DECREF(dict); return NULL; }
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            Py_DECREF(key); Py_DECREF(dict);
            return fail(ps, "expected ':'");
        }
        ps->p++;
        skip_ws(ps);
        int bulky = 0;
        if (ps->p < ps->end && *ps->p == '"') {
            PyObject *mode = PyDict_GetItemWithError(ps->bulky, key);
            if (mode != NULL) {
                bulky = (int)PyLong_AsLong(mode);
            } else if (PyErr_Occurred()) {
                Py_DECREF(key); Py_DECREF(dict); return NULL;
            }
        }
        PyObject *value = parse_value(ps, bulky);
        if (value == NULL) { Py_DECREF(key); Py_DECREF(dict); return NULL; }
        int rc = PyDict_SetItem(dict, key, value);
        Py_DECREF(value);
        members++;
        if (rc < 0 || PyDict_GET_SIZE(dict) != members) {
            if (rc == 0) {
                PyErr_Format(StrictError, "duplicate key %R at byte %zd", key,
                             (Py_ssize_t)(ps->p - ps->start));
            }
            Py_DECREF(key); Py_DECREF(dict);
            return NULL;
        }
        Py_DECREF(key);
        skip_ws(ps);
        if (ps->p >= ps->end) { Py_DECREF(dict); return fail(ps, "unterminated object"); }
        if (*ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (*ps->p == '}') {
            ps->p++;
            break;
        }
        Py_DECREF(dict);
        return fail(ps, "expected ',' or '}'");
    }
    ps->depth--;
    return dict;
}

static PyObject *
parse_array(Parser *ps)
{
    if (++ps->depth > ps->max_depth) return fail(ps, "nesting too deep");
    ps->p++;  /* '[' */
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        ps->depth--;
        return list;
    }
    for (;;) {
        PyObject *value = parse_value(ps, 0);
        if (value == NULL) { Py_DECREF(list); return NULL; }
        int rc = PyList_Append(list, value);
        Py_DECREF(value);
        if (rc < 0) { Py_DECREF(list); return NULL; }
        skip_ws(ps);
        if (ps->p >= ps->end) { Py_DECREF(list); return fail(ps, "unterminated array"); }
        if (*ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (*ps->p == ']') {
            ps->p++;
            break;
        }
        Py_DECREF(list);
        return fail(ps, "expected ',' or ']'");
    }
    ps->depth--;
    return list;
}

static PyObject *
parse_value(Parser *ps, int bulky)
{
    if (ps->p >= ps->end) return fail(ps, "unexpected end of input");
    switch (*ps->p) {
    case '{':
        return parse_object(ps);
    case '[':
        return parse_array(ps);
    case '"':
        ps->p++;
        return parse_string(ps, ps->keep, bulky);
    case 't':
        if (expect_literal(ps, "true", 4) < 0) return NULL;
        Py_RETURN_TRUE;
    case 'f':
        if (expect_literal(ps, "false", 5) < 0) return NULL;
        Py_RETURN_FALSE;
    case 'n':
        if (expect_literal(ps, "null", 4) < 0) return NULL;
        Py_RETURN_NONE;
    default:
        return parse_number(ps);
    }
}

static PyObject *
strict_loads(PyObject *self, PyObject *args)
{
    Py_buffer view;
    int max_depth;
    Py_ssize_t keep;
    PyObject *bulky, *long_type, *dropped;
    if (!PyArg_ParseTuple(args, "y*inO!OO", &view, &max_depth, &keep, &PyDict_Type, &bulky,
                          &long_type, &dropped)) {
        return NULL;
    }
    Parser ps = {0};
    ps.start = ps.p = (const unsigned char *)view.buf;
    ps.end = ps.start + view.len;
    ps.max_depth = max_depth;
    ps.keep = keep;
    ps.bulky = bulky;
    ps.long_type = long_type;
    ps.dropped = dropped;
    PyObject *result = NULL;
    if (view.len >= 3 && memcmp(ps.p, "\xEF\xBB\xBF", 3) == 0) {
        fail(&ps, "byte order mark");
        goto done;
    }
    skip_ws(&ps);
    result = parse_value(&ps, 0);
    if (result != NULL) {
        skip_ws(&ps);
        if (ps.p != ps.end) {
            Py_CLEAR(result);
            fail(&ps, "trailing characters");
        }
    }
done:
    PyMem_Free(ps.buf);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"loads", strict_loads, METH_VARARGS,
     "loads(data, max_depth, keep, bulky, long_type, dropped) -> value; raises StrictJSONError."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_strictjson", "Strict single-pass JSON decoding.", -1, methods,
};

PyMODINIT_FUNC
PyInit__strictjson(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    StrictError = PyErr_NewException("modelguard._strictjson.StrictJSONError",
                                     PyExc_ValueError, NULL);
    if (StrictError == NULL || PyModule_AddObjectRef(m, "StrictJSONError", StrictError) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
