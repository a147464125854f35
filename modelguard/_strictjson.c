/* Strict JSON decoding for modelguard's hot path.
 *
 * One pass over the body that both validates it (I-JSON: strict UTF-8, no BOM, no NaN or
 * Infinity, numbers within double range, no integer part over 4300 digits, no lone surrogates,
 * nesting of at most 200 levels, no duplicate keys in any object) and builds the Python values
 * the verdict reads. What the verdict never reads is validated the same way but not built:
 *
 * - long strings under "bulky" keys (text, base64 data, signatures, ...): the caller gets a
 *   shared empty LongString (a str subclass), or for keys whose prefix matters (a data: URL) a
 *   LongString holding only the part up to the first comma, so a 2 MB image costs no copy;
 * - non-empty objects and arrays under "skip" keys (tool schemas: input_schema, parameters,
 *   properties, response schemas, ...): the caller gets a fresh empty placeholder of the
 *   configured dict or list subclass, so an agent's 80 KB of schemas cost no Python objects.
 *
 * What one call may build is bounded (the structure budget): every value built costs a fixed
 * number of bytes, and every string built its width beyond one byte per character; once the
 * budget is spent the rest of the body is only validated, and the call raises
 * StructureLimitError unless the body is invalid anyway (an invalid body is always reported as
 * invalid, whatever its size).
 *
 * The pure-Python fallback in body.py (jiter plus a tree walk) accepts and refuses exactly the
 * same inputs, counts the same budget and hands back the same placeholders; the tests compare
 * the two.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The deepest nesting any caller gets (decisions.md §11). */
#define MAX_DEPTH 200
/* Integer parts longer than this are refused whatever follows (as Python's int() would). */
#define MAX_INT_DIGITS 4300
/* A string is scanned holding the GIL for this many bytes; the rest of a longer one is scanned
 * with the GIL released (scan_string). Releasing costs about a microsecond when no other thread
 * waits, and scanning this much about ten. */
#define RELEASE_AFTER (64 * 1024)
/* A body of many small values is read holding the GIL (its values are Python objects, or are
 * checked against Python-side limits); every this many bytes other threads may take it. */
#define YIELD_BYTES (64 * 1024)
/* Keys of one skipped object kept in a plain array before a hash table is built. */
#define SMALL_KEYS 8

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* Key modes (values of the configured key table; bits). */
#define MODE_DROP 1    /* a long string value: the shared stand-in */
#define MODE_PREFIX 2  /* a long string value: its head up to the first comma */
#define MODE_SKIP 4    /* a non-empty object or array value: validated, a placeholder */

typedef struct {
    const unsigned char *start;
    const unsigned char *p;
    const unsigned char *end;
    int depth;
    int max_depth;
    Py_ssize_t cost;          /* bytes the values built so far are charged */
    Py_ssize_t budget;        /* what they may be charged */
    int over;                 /* the budget is spent: validate the rest, build nothing */
    const unsigned char *next_yield;  /* where other threads next get a turn (let_others_run) */
    char *buf;                /* scratch for unescaping (raw memory: see scan_string) */
    Py_ssize_t buf_cap;
    char *arena;              /* unescaped keys of the skipped objects being read */
    Py_ssize_t arena_len;
    Py_ssize_t arena_cap;
} Parser;

/* Set once by configure(). */
static PyObject *cfg_keys;          /* dict: key -> mode bits (a copy of the configured one) */
static PyObject *cfg_long_type;     /* the LongString class */
static PyObject *cfg_dropped;       /* the shared LongString standing for a dropped value */
static PyObject *cfg_skipped_object;
static PyObject *cfg_skipped_array;
static Py_ssize_t cfg_keep = 512;   /* bulky strings up to this many bytes are kept whole */
static Py_ssize_t cfg_value_cost = 64;

static PyObject *StrictError;
static PyObject *LimitError;

/* The error of a scan that ran out of memory (set as MemoryError). */
static const char NO_MEMORY[] = "out of memory";

static void *
fail(Parser *ps, const char *what)
{
    if (!PyErr_Occurred()) {
        PyErr_Format(StrictError, "%s at byte %zd", what, (Py_ssize_t)(ps->p - ps->start));
    }
    return NULL;
}

/* Whitespace is rare and short (none, or one space after ',' and ':'): the first byte decides,
 * and the pointer is kept in a register (a byte read could alias ps->p). */
static inline void
skip_ws(Parser *ps)
{
    const unsigned char *p = ps->p;
    const unsigned char *end = ps->end;
    while (p < end && *p <= ' ' && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    ps->p = p;
}

/* Give other threads a turn every YIELD_BYTES of input. Releasing and taking back the GIL hands
 * it over only to a thread that has asked for it (after waiting the switch interval), as the
 * interpreter does between bytecodes: a 32 MiB body of small objects no longer holds it for
 * its whole parse (a few hundred ms). Called only between values, where no borrowed reference
 * is held. */
static inline void
let_others_run(Parser *ps)
{
    if (ps->p >= ps->next_yield) {
        ps->next_yield = ps->p + YIELD_BYTES;
        Py_BEGIN_ALLOW_THREADS
        Py_END_ALLOW_THREADS
    }
}

/* -- scanning (shared by building and validate-only reading) ------------------------------ */

/* Length of a valid UTF-8 sequence starting at p (p[0] >= 0x80), or 0 if invalid. */
static inline int
utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    if (c >= 0xC2 && c <= 0xDF) {
        if (end - p < 2 || (p[1] & 0xC0) != 0x80) return 0;
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0;          /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0;         /* UTF-16 surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;          /* overlong */
        if (c == 0xF4 && p[1] >= 0x90) return 0;         /* above U+10FFFF */
        return 4;
    }
    return 0;
}

#if defined(__SSE2__)
/* The bytes of a 16-byte block that end a run of plain string bytes: quote, backslash,
 * control and high bytes (a signed compare: bytes >= 0x80 are negative, so < 0x20 too). */
static inline __m128i
special_bytes(__m128i v)
{
    return _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                     _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                        _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
}
#endif

/* Advance over plain ASCII string bytes (no quote, backslash, control or high byte). */
static inline const unsigned char *
scan_plain(const unsigned char *p, const unsigned char *end)
{
#if defined(__SSE2__)
    while (end - p >= 16) {
        int mask = _mm_movemask_epi8(special_bytes(_mm_loadu_si128((const __m128i *)p)));
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
grow_buf(char **buf, Py_ssize_t *cap, Py_ssize_t need)
{
    if (need <= *cap) return 0;
    Py_ssize_t n = *cap ? *cap : 256;
    while (n < need) n *= 2;
    char *grown = PyMem_Realloc(*buf, (size_t)n);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *buf = grown;
    *cap = n;
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

/* A scanned string: its unescaped UTF-8 length, whether it is all ASCII, and (when asked for,
 * or when it has no escapes) its unescaped text, in the input or in the scratch buffer (valid
 * until the next scan); NULL when not asked for and unescaping was needed. */
typedef struct {
    const char *text;
    Py_ssize_t len;
    int ascii;
} Str;

/* Grow the scratch buffer (raw memory: it may grow while the GIL is released, see
 * scan_string); -1 without an exception set when out of memory. */
static int
grow_scratch(Parser *ps, Py_ssize_t need)
{
    if (need <= ps->buf_cap) return 0;
    Py_ssize_t n = ps->buf_cap ? ps->buf_cap : 256;
    while (n < need) n *= 2;
    char *grown = PyMem_RawRealloc(ps->buf, (size_t)n);
    if (grown == NULL) return -1;
    ps->buf = grown;
    ps->buf_cap = n;
    return 0;
}

/* Validate a string; ps->p is just past the opening quote and ends just past the closing one.
 * With `copy` 0 an escaped string is only measured, not unescaped.
 *
 * A long string (base64 media, a pasted document) is most of a large body: past its first
 * RELEASE_AFTER bytes the rest of it is scanned with the GIL released, so that other threads
 * (the event loop of a server inspecting the body in a worker thread) run meanwhile. The scan
 * touches only the input (kept alive by the caller's buffer) and the raw scratch buffer, and
 * every error is set once the GIL is held again. */
static int
scan_string(Parser *ps, Str *out, int copy)
{
    const unsigned char *begin = ps->p;
    const unsigned char *p = begin;
    const unsigned char *end = ps->end;
    /* scanned holding the GIL up to here; past it, the GIL is released to the string's end */
    const unsigned char *hold = end - begin > RELEASE_AFTER ? begin + RELEASE_AFTER : end;
    PyThreadState *released = NULL;
    const char *error = NULL;      /* a message for fail(), or NO_MEMORY */
    int ascii = 1;
    Py_ssize_t outlen;
    /* fast path: no escapes */
    for (;;) {
        p = scan_plain(p, hold);
        if (p >= hold) {
            if (hold == end) { ps->p = p; error = "unterminated string"; goto done; }
            released = PyEval_SaveThread();
            hold = end;
            continue;
        }
        unsigned char c = *p;
        if (c == '"') {
            ps->p = p + 1;
            out->text = (const char *)begin;
            out->len = p - begin;
            out->ascii = ascii;
            goto done;
        }
        if (c == '\\') break;
        if (c < 0x20) { ps->p = p; error = "control character in string"; goto done; }
        int len = utf8_seq(p, end);
        if (len == 0) { ps->p = p; error = "invalid UTF-8"; goto done; }
        ascii = 0;
        p += len;
    }
    /* slow path: unescape into the scratch buffer (or only measure) */
    outlen = p - begin;
    if (copy) {
        if (grow_scratch(ps, outlen + 64) < 0) { error = NO_MEMORY; goto done; }
        memcpy(ps->buf, begin, (size_t)outlen);
    }
    ps->p = p;
    for (;;) {
        const unsigned char *q = scan_plain(ps->p, hold);
        if (q > ps->p) {
            Py_ssize_t run = q - ps->p;
            if (copy) {
                if (grow_scratch(ps, outlen + run + 8) < 0) { error = NO_MEMORY; goto done; }
                memcpy(ps->buf + outlen, ps->p, (size_t)run);
            }
            outlen += run;
            ps->p = q;
        }
        if (ps->p >= hold) {
            if (hold == end) { error = "unterminated string"; goto done; }
            released = PyEval_SaveThread();
            hold = end;
            continue;
        }
        unsigned char c = *ps->p;
        if (c == '"') { ps->p++; break; }
        if (copy && grow_scratch(ps, outlen + 8) < 0) { error = NO_MEMORY; goto done; }
        if (c == '\\') {
            ps->p++;
            if (ps->p >= end) { error = "unterminated string"; goto done; }
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
                if (read_hex4(ps, &cp) < 0) { error = "bad \\u escape"; goto done; }
                if (cp >= 0xDC00 && cp <= 0xDFFF) { error = "lone surrogate escape"; goto done; }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    Py_UCS4 lo;
                    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                        error = "lone surrogate escape";
                        goto done;
                    }
                    ps->p += 2;
                    if (read_hex4(ps, &lo) < 0) { error = "bad \\u escape"; goto done; }
                    if (lo < 0xDC00 || lo > 0xDFFF) { error = "lone surrogate escape"; goto done; }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                break;
            default:
                ps->p--;
                error = "bad escape";
                goto done;
            }
            if (cp >= 0x80) ascii = 0;
            if (copy) {
                outlen += put_utf8(ps->buf + outlen, cp);
            } else {
                outlen += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            }
        } else if (c < 0x20) {
            error = "control character in string";
            goto done;
        } else {
            int len = utf8_seq(ps->p, end);
            if (len == 0) { error = "invalid UTF-8"; goto done; }
            if (copy) memcpy(ps->buf + outlen, ps->p, (size_t)len);
            outlen += len;
            ps->p += len;
            ascii = 0;
        }
    }
    out->text = copy ? ps->buf : NULL;
    out->len = outlen;
    out->ascii = ascii;
done:
    if (released != NULL) PyEval_RestoreThread(released);
    if (error == NULL) return 0;
    if (error == NO_MEMORY) PyErr_NoMemory();
    else fail(ps, error);
    return -1;
}

/* A number's text, validated: range (no infinity as a double) and length rules. */
typedef struct {
    const unsigned char *begin;
    Py_ssize_t len;
    Py_ssize_t int_digits;
    int is_float;
    int neg;
    double value;             /* for floats, and for integers of MAX_INT ... checked ones */
} Num;

static int
number_text(const Num *num, char *small, size_t small_size, char **text)
{
    *text = small;
    if ((size_t)num->len >= small_size) {
        *text = PyMem_Malloc((size_t)num->len + 1);
        if (*text == NULL) { PyErr_NoMemory(); return -1; }
    }
    memcpy(*text, num->begin, (size_t)num->len);
    (*text)[num->len] = '\0';
    return 0;
}

static int
scan_number(Parser *ps, Num *num)
{
    const unsigned char *begin = ps->p;
    const unsigned char *p = begin;
    const unsigned char *end = ps->end;
    num->neg = 0;
    num->is_float = 0;
    if (p < end && *p == '-') { num->neg = 1; p++; }
    if (p >= end) { ps->p = p; fail(ps, "bad number"); return -1; }
    const unsigned char *digits = p;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') p++;
    } else {
        ps->p = p;
        fail(ps, "unexpected character");
        return -1;
    }
    num->int_digits = p - digits;
    if (p < end && *p == '.') {
        num->is_float = 1;
        p++;
        if (p >= end || *p < '0' || *p > '9') { ps->p = p; fail(ps, "bad number"); return -1; }
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        num->is_float = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') { ps->p = p; fail(ps, "bad number"); return -1; }
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    ps->p = p;
    num->begin = begin;
    num->len = p - begin;
    if (num->int_digits > MAX_INT_DIGITS) {
        fail(ps, "number out of range (integer part over 4300 digits)");
        return -1;
    }
    /* Integers of up to 308 digits are below DBL_MAX; 310 or more are above it. */
    if (!num->is_float && num->int_digits < 309) return 0;
    if (!num->is_float && num->int_digits > 309) {
        fail(ps, "number outside double range");
        return -1;
    }
    char small[128];
    char *text;
    if (number_text(num, small, sizeof(small), &text) < 0) return -1;
    /* Correctly rounded, as float() and int-to-float conversion are: infinity means the
     * value rounds past DBL_MAX. */
    double d = PyOS_string_to_double(text, NULL, NULL);
    if (text != small) PyMem_Free(text);
    if (d == -1.0 && PyErr_Occurred()) return -1;
    if (isinf(d)) {
        fail(ps, "number outside double range");
        return -1;
    }
    num->value = d;
    return 0;
}

static PyObject *
build_number(Parser *ps, const Num *num)
{
    if (num->is_float) return PyFloat_FromDouble(num->value);
    if (num->int_digits <= 18) {
        long long v = 0;
        for (const unsigned char *q = num->begin + num->neg; q < num->begin + num->len; q++) {
            v = v * 10 + (*q - '0');
        }
        return PyLong_FromLongLong(num->neg ? -v : v);
    }
    char small[128];
    char *text;
    if (number_text(num, small, sizeof(small), &text) < 0) return NULL;
    PyObject *res = PyLong_FromString(text, NULL, 10);
    if (text != small) PyMem_Free(text);
    (void)ps;
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

/* -- validate-only reading: skipped subtrees, and everything once the budget is spent ---- */

/* Whether two short texts of `n` bytes are equal: a few word compares instead of a call. */
static inline int
same_bytes(const char *a, const char *b, Py_ssize_t n)
{
    if (n > 16) return memcmp(a, b, (size_t)n) == 0;
    if (n >= 8) {
        uint64_t x, y, u, v;
        memcpy(&x, a, 8); memcpy(&y, b, 8);
        memcpy(&u, a + n - 8, 8); memcpy(&v, b + n - 8, 8);
        return x == y && u == v;
    }
    if (n >= 4) {
        uint32_t x, y, u, v;
        memcpy(&x, a, 4); memcpy(&y, b, 4);
        memcpy(&u, a + n - 4, 4); memcpy(&v, b + n - 4, 4);
        return x == y && u == v;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (a[i] != b[i]) return 0;
    }
    return 1;
}

/* A key of an object read without building it: its text in the input when it has no escapes
 * (the input outlives the parse), else copied into the arena. */
typedef struct {
    const char *text;         /* in the input, or NULL: in ps->arena at `off` */
    Py_ssize_t off;
    Py_ssize_t len;
    Py_hash_t hash;           /* set once the object has a hash table */
} KeyRef;

/* The keys of one object read without building it. Up to SMALL_KEYS keys are compared
 * directly (length and end bytes first), without hashing; beyond that a table over their
 * (keyed) hashes is built. */
typedef struct {
    KeyRef small[SMALL_KEYS];
    KeyRef *refs;             /* small, or a heap array once there are more */
    Py_ssize_t n;
    Py_ssize_t cap;
    Py_ssize_t *table;        /* open addressing over refs (index + 1; 0 is empty) */
    Py_ssize_t table_cap;
    Py_ssize_t mark;          /* arena length when the object started */
} KeySet;

static inline void
keyset_init(Parser *ps, KeySet *ks)
{
    ks->refs = ks->small;
    ks->n = 0;
    ks->cap = SMALL_KEYS;
    ks->table = NULL;
    ks->table_cap = 0;
    ks->mark = ps->arena_len;
}

static inline void
keyset_free(Parser *ps, KeySet *ks)
{
    if (ks->refs != ks->small) PyMem_Free(ks->refs);
    if (ks->table != NULL) PyMem_Free(ks->table);
    ps->arena_len = ks->mark;
}

static inline Py_hash_t
hash_bytes(const char *text, Py_ssize_t len)
{
#if PY_VERSION_HEX >= 0x030E0000
    return Py_HashBuffer(text, len);
#else
    return _Py_HashBytes(text, len);   /* keyed (SipHash): no chosen collisions */
#endif
}

static inline const char *
keyref_text(const Parser *ps, const KeyRef *r)
{
    return r->text != NULL ? r->text : ps->arena + r->off;
}

/* Whether a stored key equals `text`: length first, then the bytes. */
static inline int
keyref_equal(const Parser *ps, const KeyRef *r, const char *text, Py_ssize_t len)
{
    return r->len == len && same_bytes(keyref_text(ps, r), text, len);
}

static int
keyset_rehash(KeySet *ks, Py_ssize_t cap)
{
    Py_ssize_t *table = PyMem_Calloc((size_t)cap, sizeof(Py_ssize_t));
    if (table == NULL) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < ks->n; i++) {
        size_t j = (size_t)ks->refs[i].hash & (size_t)(cap - 1);
        while (table[j]) j = (j + 1) & (size_t)(cap - 1);
        table[j] = i + 1;
    }
    PyMem_Free(ks->table);
    ks->table = table;
    ks->table_cap = cap;
    return 0;
}

/* Add a key; 1 if the object already has it, 0 if added, -1 on error. A key in the input is
 * referred to where it is; any other text (the scratch buffer) is copied into the arena. */
static int
keyset_add(Parser *ps, KeySet *ks, const char *text, Py_ssize_t len)
{
    Py_hash_t h = 0;
    if (ks->table != NULL) {
        h = hash_bytes(text, len);
        size_t mask = (size_t)ks->table_cap - 1;
        for (size_t j = (size_t)h & mask; ks->table[j]; j = (j + 1) & mask) {
            KeyRef *r = &ks->refs[ks->table[j] - 1];
            if (r->hash == h && keyref_equal(ps, r, text, len)) return 1;
        }
    } else {
        for (Py_ssize_t i = 0; i < ks->n; i++) {
            if (keyref_equal(ps, &ks->refs[i], text, len)) return 1;
        }
    }
    if (ks->n == ks->cap) {
        Py_ssize_t cap = ks->cap * 2;
        KeyRef *refs = PyMem_Malloc((size_t)cap * sizeof(KeyRef));
        if (refs == NULL) { PyErr_NoMemory(); return -1; }
        memcpy(refs, ks->refs, (size_t)ks->n * sizeof(KeyRef));
        if (ks->refs != ks->small) PyMem_Free(ks->refs);
        ks->refs = refs;
        ks->cap = cap;
    }
    KeyRef *r = &ks->refs[ks->n++];
    r->len = len;
    r->hash = h;
    if ((const unsigned char *)text >= ps->start && (const unsigned char *)text < ps->end) {
        r->text = text;
        r->off = 0;
    } else {
        if (grow_buf(&ps->arena, &ps->arena_cap, ps->arena_len + len + 1) < 0) return -1;
        memcpy(ps->arena + ps->arena_len, text, (size_t)len);
        r->text = NULL;
        r->off = ps->arena_len;
        ps->arena_len += len;
    }
    if (ks->n > SMALL_KEYS) {
        if (ks->table == NULL) {
            /* the first time past the small size: hash the keys so far */
            for (Py_ssize_t i = 0; i < ks->n - 1; i++) {
                ks->refs[i].hash = hash_bytes(keyref_text(ps, &ks->refs[i]), ks->refs[i].len);
            }
            r->hash = hash_bytes(text, len);
        }
        if (ks->table == NULL || ks->n * 2 > ks->table_cap) {
            Py_ssize_t cap = 32;
            while (cap < ks->n * 4) cap *= 2;
            if (keyset_rehash(ks, cap) < 0) return -1;
        } else {
            size_t mask = (size_t)ks->table_cap - 1;
            size_t j = (size_t)r->hash & mask;
            while (ks->table[j]) j = (j + 1) & mask;
            ks->table[j] = ks->n;
        }
    }
    return 0;
}

/* Keys echoed in messages are cut to this many characters (decisions.md §11). */
#define SHOWN_KEY_CHARS 64

static void *
fail_duplicate(Parser *ps, PyObject *key)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(key);
    PyObject *shown = PyUnicode_Substring(key, 0, n > SHOWN_KEY_CHARS ? SHOWN_KEY_CHARS : n);
    if (shown != NULL) {
        PyErr_Format(StrictError, "duplicate key %R%s at byte %zd", shown,
                     n > SHOWN_KEY_CHARS ? "..." : "", (Py_ssize_t)(ps->p - ps->start));
        Py_DECREF(shown);
    }
    return NULL;
}

static int
duplicate_key(Parser *ps, const char *text, Py_ssize_t len)
{
    PyObject *key = PyUnicode_DecodeUTF8(text, len, "strict");
    if (key != NULL) {
        fail_duplicate(ps, key);
        Py_DECREF(key);
    }
    return -1;
}

/* Escapes that stand for one character and need nothing more checked (all but \u). */
static const unsigned char simple_escape[256] = {
    ['"'] = 1, ['\\'] = 1, ['/'] = 1, ['b'] = 1, ['f'] = 1, ['n'] = 1, ['r'] = 1, ['t'] = 1,
};

/* Measure a string as scan_string(ps, out, 0) does (ps->p just past the opening quote), for
 * the strings only validated or measured: skipped ones and those under drop keys. Plain bytes,
 * the one-character escapes and valid UTF-8 are passed here, every special byte of a 16-byte
 * block taken from one load (an escape or a multi-byte character does not restart the scan);
 * anything else (a \u escape, or an error) is left to scan_string from the start of the
 * string, so that every answer, and every error and its position, is scan_string's. */
static ALWAYS_INLINE int
measure_string(Parser *ps, Str *out)
{
    const unsigned char *begin = ps->p;
    const unsigned char *p = begin;
    const unsigned char *end = ps->end;
    /* a string longer than this is left to scan_string, which releases the GIL past it */
    const unsigned char *hold = end - begin > RELEASE_AFTER ? begin + RELEASE_AFTER : end;
    Py_ssize_t escapes = 0;   /* each one-character escape is one byte shorter unescaped */
    int ascii = 1;
#if defined(__SSE2__)
    while (hold - p >= 16) {
        const unsigned char *next = p + 16;
        unsigned mask = (unsigned)_mm_movemask_epi8(special_bytes(_mm_loadu_si128((const __m128i *)p)));
        while (mask) {
            int i = __builtin_ctz(mask);
            const unsigned char *q = p + i;
            unsigned char c = *q;
            if (c == '"') {
                p = q;
                goto closed;
            }
            int len;
            if (c == '\\') {
                if (end - q < 2 || !simple_escape[q[1]]) goto slow;
                escapes++;
                len = 2;
            } else if (c >= 0x80) {
                len = utf8_seq(q, end);
                if (len == 0) goto slow;
                ascii = 0;
            } else {
                goto slow;   /* a control character */
            }
            if (i + len >= 16) {
                next = q + len;   /* the rest of this block is inside the sequence */
                break;
            }
            mask &= ~0u << (i + len);
        }
        p = next;
    }
#endif
    while (p < hold) {
        p = scan_plain(p, hold);
        if (p >= hold) break;
        unsigned char c = *p;
        if (c == '"') goto closed;
        if (c == '\\') {
            if (end - p < 2 || !simple_escape[p[1]]) goto slow;
            escapes++;
            p += 2;
        } else if (c >= 0x80) {
            int len = utf8_seq(p, end);
            if (len == 0) goto slow;
            ascii = 0;
            p += len;
        } else {
            goto slow;
        }
    }
    goto slow;   /* unterminated, or longer than `hold` */
closed:
    ps->p = p + 1;
    out->text = escapes ? NULL : (const char *)begin;
    out->len = (p - begin) - escapes;
    out->ascii = ascii;
    return 0;
slow:
    ps->p = begin;
    return scan_string(ps, out, 0);
}

/* Validate a string without keeping anything of it. */
static inline int
skip_string(Parser *ps)
{
    Str s;
    return measure_string(ps, &s);
}

/* Read a key: its text in the input when it has no escapes
 * (the common case, without a call), else unescaped by scan_string into the scratch buffer. */
static inline int
scan_key(Parser *ps, Str *key)
{
    const unsigned char *q = scan_plain(ps->p, ps->end);
    if (q < ps->end && *q == '"') {
        key->text = (const char *)ps->p;
        key->len = q - ps->p;
        key->ascii = 1;
        ps->p = q + 1;
        return 0;
    }
    return scan_string(ps, key, 1);
}

static int skip_value(Parser *ps, int *empty);

/* The members of an object, validate-only. `state` 0: at the first key or '}' (after '{');
 * 1: just after a key (its text already in `ks`); 2: just after a value. */
static int
skip_members(Parser *ps, KeySet *ks, int state, int *empty)
{
    if (empty) *empty = 0;
    if (state == 0) {
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            if (empty) *empty = 1;
            return 0;
        }
    }
    for (;;) {
        if (state == 2) {
            skip_ws(ps);
            if (ps->p >= ps->end) { fail(ps, "unterminated object"); return -1; }
            if (*ps->p == '}') { ps->p++; return 0; }
            if (*ps->p != ',') { fail(ps, "expected ',' or '}'"); return -1; }
            ps->p++;
            skip_ws(ps);
        }
        if (state != 1) {
            if (ps->p >= ps->end || *ps->p != '"') { fail(ps, "expected a key"); return -1; }
            ps->p++;
            Str key;
            if (scan_key(ps, &key) < 0) return -1;
            int dup = keyset_add(ps, ks, key.text, key.len);
            if (dup < 0) return -1;
            if (dup) return duplicate_key(ps, key.text, key.len);
        }
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') { fail(ps, "expected ':'"); return -1; }
        ps->p++;
        skip_ws(ps);
        if (skip_value(ps, NULL) < 0) return -1;
        state = 2;
    }
}

/* The elements of an array, validate-only. `after_value`: 0 just after '[', 1 after an
 * element. */
static int
skip_elements(Parser *ps, int after_value, int *empty)
{
    if (empty) *empty = 0;
    if (!after_value) {
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            if (empty) *empty = 1;
            return 0;
        }
        if (skip_value(ps, NULL) < 0) return -1;
    }
    for (;;) {
        skip_ws(ps);
        if (ps->p >= ps->end) { fail(ps, "unterminated array"); return -1; }
        if (*ps->p == ']') { ps->p++; return 0; }
        if (*ps->p != ',') { fail(ps, "expected ',' or ']'"); return -1; }
        ps->p++;
        skip_ws(ps);
        if (skip_value(ps, NULL) < 0) return -1;
    }
}

/* Validate one value without building anything; `empty` (if given) tells whether it was an
 * empty object or array. */
static int
skip_value(Parser *ps, int *empty)
{
    if (empty) *empty = 0;
    let_others_run(ps);
    if (ps->p >= ps->end) { fail(ps, "unexpected end of input"); return -1; }
    switch (*ps->p) {
    case '{': {
        if (++ps->depth > ps->max_depth) { fail(ps, "nesting too deep"); return -1; }
        ps->p++;
        KeySet ks;
        keyset_init(ps, &ks);
        int rc = skip_members(ps, &ks, 0, empty);
        keyset_free(ps, &ks);
        ps->depth--;
        return rc;
    }
    case '[': {
        if (++ps->depth > ps->max_depth) { fail(ps, "nesting too deep"); return -1; }
        ps->p++;
        int rc = skip_elements(ps, 0, empty);
        ps->depth--;
        return rc;
    }
    case '"':
        ps->p++;
        return skip_string(ps);
    case 't':
        return expect_literal(ps, "true", 4);
    case 'f':
        return expect_literal(ps, "false", 5);
    case 'n':
        return expect_literal(ps, "null", 4);
    default: {
        Num num;
        return scan_number(ps, &num);
    }
    }
}

/* -- building ------------------------------------------------------------------------------ */

/* The bytes a string's characters take beyond one each in memory (CPython stores a string at
 * 1, 2 or 4 bytes per character, by its widest one). `text` is valid UTF-8. */
static Py_ssize_t
wide_extra(const char *text, Py_ssize_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    Py_ssize_t chars = 0;
    int kind = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if ((c & 0xC0) != 0x80) chars++;
        if (c >= 0xF0) kind = 4;
        else if (c >= 0xC4 && kind < 2) kind = 2;   /* U+0100 and above */
    }
    return chars * (kind - 1);
}

/* Charge `amount` bytes; 0 while within budget, 1 once it is spent. */
static inline int
charge(Parser *ps, Py_ssize_t amount)
{
    ps->cost += amount;
    if (ps->cost > ps->budget) {
        ps->over = 1;
        return 1;
    }
    return 0;
}

static PyObject *
ascii_string(const char *text, Py_ssize_t n)
{
    PyObject *s = PyUnicode_New(n, 127);
    if (s == NULL) return NULL;
    memcpy(PyUnicode_DATA(s), text, (size_t)n);
    return s;
}

/* A cheap hash of a short text for the direct-mapped caches: its length and its first and last
 * bytes (up to 8 of each). Texts alike in those share a slot and only take turns in it. */
static inline uint32_t
short_hash(const char *text, Py_ssize_t n)
{
    uint64_t a = 0, b = 0;
    if (n >= 8) {
        memcpy(&a, text, 8);
        memcpy(&b, text + n - 8, 8);
    } else if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, text, 4);
        memcpy(&y, text + n - 4, 4);
        a = x;
        b = y;
    } else if (n > 0) {
        a = (uint64_t)(unsigned char)text[0] | (uint64_t)(unsigned char)text[n / 2] << 8 |
            (uint64_t)(unsigned char)text[n - 1] << 16;
    }
    uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ull) ^ (uint64_t)n) * 0xFF51AFD7ED558CCDull;
    return (uint32_t)(h >> 32);
}

/* Short ASCII values repeat too ("user", "text", "function"): a small direct-mapped cache of
 * them (strings are immutable, so a shared one is as good as a new one). */
#define VALUE_CACHE_SIZE 256
#define VALUE_CACHE_MAX_LEN 16
static PyObject *value_cache[VALUE_CACHE_SIZE];

static PyObject *
cached_value(const char *text, Py_ssize_t n)
{
    PyObject **slot = &value_cache[short_hash(text, n) & (VALUE_CACHE_SIZE - 1)];
    PyObject *hit = *slot;
    if (hit != NULL && PyUnicode_GET_LENGTH(hit) == n &&
            same_bytes(PyUnicode_DATA(hit), text, n)) {
        return Py_NewRef(hit);
    }
    PyObject *res = ascii_string(text, n);
    if (res != NULL) Py_XSETREF(*slot, Py_NewRef(res));
    return res;
}

/* Build a scanned string value (charged its value cost already). With mode DROP or PREFIX and
 * a text longer than the keep size it is cut: DROP gives the shared stand-in, PREFIX the text
 * up to and including its first comma as a LongString (or the whole text if it has none), so
 * the reader sees exactly what it would see in the full text. Once the budget is spent, None. */
static PyObject *
build_string(Parser *ps, const Str *s, int mode)
{
    const char *text = s->text;
    Py_ssize_t n = s->len;
    int cut = 0;
    if ((mode & (MODE_DROP | MODE_PREFIX)) && n > cfg_keep) {
        if (mode & MODE_DROP) return Py_NewRef(cfg_dropped);
        const char *comma = memchr(text, ',', (size_t)n);
        if (comma != NULL) {
            n = comma + 1 - text;
            cut = 1;
        }
    }
    if (!cut && s->ascii && n <= VALUE_CACHE_MAX_LEN) return cached_value(text, n);
    if (!s->ascii && charge(ps, wide_extra(text, n))) Py_RETURN_NONE;
    PyObject *res = s->ascii ? ascii_string(text, n) : PyUnicode_DecodeUTF8(text, n, "strict");
    if (res == NULL || !cut) return res;
    PyObject *head = PyObject_CallOneArg(cfg_long_type, res);
    Py_DECREF(res);
    return head;
}

/* Keys repeat ("type", "text", "role"): plain ASCII keys come from a small cache, with their
 * hash already computed and their mode in the key table once looked up (-1: not yet; the
 * slot is given to callers who want it). Direct-mapped; a miss just builds the string. */
#define KEY_CACHE_SIZE 512
#define KEY_CACHE_MAX_LEN 32
typedef struct {
    PyObject *key;
    int mode;
} KeySlot;
static KeySlot key_cache[KEY_CACHE_SIZE];

static PyObject *
cached_key(const char *text, Py_ssize_t n, KeySlot **slot_out)
{
    KeySlot *slot = &key_cache[short_hash(text, n) & (KEY_CACHE_SIZE - 1)];
    if (slot_out != NULL) *slot_out = slot;
    PyObject *hit = slot->key;
    if (hit != NULL && PyUnicode_GET_LENGTH(hit) == n &&
            same_bytes(PyUnicode_DATA(hit), text, n)) {
        return Py_NewRef(hit);
    }
    PyObject *s = ascii_string(text, n);
    if (s == NULL) return NULL;
    if (PyObject_Hash(s) == -1) { Py_DECREF(s); return NULL; }
    Py_XSETREF(slot->key, Py_NewRef(s));
    slot->mode = -1;
    return s;
}

/* A key's mode in the configured key table (0 if it has none); remembered in its cache slot. */
static inline int
key_mode(PyObject *key, KeySlot *slot)
{
    if (slot != NULL && slot->mode >= 0) return slot->mode;
    PyObject *bits = PyDict_GetItemWithError(cfg_keys, key);
    if (bits == NULL) {
        if (PyErr_Occurred()) return -1;
        if (slot != NULL) slot->mode = 0;
        return 0;
    }
    long mode = PyLong_AsLong(bits);
    if (mode == -1 && PyErr_Occurred()) return -1;
    if (slot != NULL) slot->mode = (int)mode;
    return (int)mode;
}

/* The rest of an object being built, validate-only once the budget is spent: its keys so far
 * (and `pending`, the key just read, if any) still count for duplicates. */
static int
finish_object(Parser *ps, PyObject *dict, const Str *pending, int state)
{
    KeySet ks;
    keyset_init(ps, &ks);
    PyObject *key;
    Py_ssize_t pos = 0;
    int rc = 0;
    while (rc == 0 && PyDict_Next(dict, &pos, &key, NULL)) {
        Py_ssize_t len;
        const char *text = PyUnicode_AsUTF8AndSize(key, &len);
        rc = text == NULL ? -1 : keyset_add(ps, &ks, text, len);
    }
    if (rc == 0 && pending != NULL) {
        /* copy first: the pending text may live in the scratch buffer */
        rc = keyset_add(ps, &ks, pending->text, pending->len);
        if (rc == 1) rc = duplicate_key(ps, pending->text, pending->len);
    }
    if (rc == 0) rc = skip_members(ps, &ks, state, NULL);
    keyset_free(ps, &ks);
    return rc;
}

static PyObject *build_value(Parser *ps, int mode, PyObject *node);

/* -- settling: objects whose kind is all the reader needs ------------------------------------
 *
 * A settle node (configured per call, see loads) is a tuple (children: dict key -> node,
 * element node or None, rule or None); a rule is a tuple (type key (None: the kind is the one
 * key of `kinds` the object has), allowed keys (a frozenset),
 * kinds: dict type value (None: no type key) -> marker, required key or None, keys whose
 * values must be strings (a frozenset), a flag key or None, the markers for objects whose
 * flag is set (not null), a nested key or None, the rule of that key's array elements, and
 * the rule compiled by compile_rule). An object at a node with a rule whose keys are all
 * allowed, with the required key and those string values, and whose type names a kind is
 * validated without being built and handed back as that kind's shared marker; when its nested
 * key holds an array whose elements all settle, as the list of their markers instead. Anything
 * else (a key not allowed, a duplicate, invalid JSON, a type that is not a short ASCII string)
 * rewinds and builds the object as usual, so errors are exactly those of the building path. */

static inline PyObject *
node_child(PyObject *node, PyObject *key)
{
    if (node == NULL) return NULL;
    PyObject *children = PyTuple_GET_ITEM(node, 0);
    if (PyDict_GET_SIZE(children) == 0) return NULL;
    PyObject *child = PyDict_GetItemWithError(children, key);
    if (child == NULL) PyErr_Clear();   /* str keys with a cached hash: cannot fail */
    return child;
}

static inline PyObject *
node_field(PyObject *node, Py_ssize_t i)
{
    if (node == NULL) return NULL;
    PyObject *field = PyTuple_GET_ITEM(node, i);
    return field == Py_None ? NULL : field;
}

/* A rule compiled once (compile_rule, called by body.settle_table) into what try_settle
 * compares the input with directly: each allowed key and each kind as bytes, so a settled
 * object costs a few byte comparisons per member and no hashing. Rule keys and kind names are
 * short ASCII (settle_table refuses others); a rule has at most RULE_MAX_KEYS keys, so the
 * keys an object has had are one bit mask (a duplicate is a second bit). */
#define RULE_CAPSULE "modelguard._strictjson.rule"
#ifndef Py_T_OBJECT_EX
#define Py_T_OBJECT_EX T_OBJECT_EX  /* before 3.12 */
#endif
#define RULE_MAX_KEYS 64
#define RULE_NAME_MAX 64
#define RK_TYPE 1       /* the type key: its string value names the kind */
#define RK_FLAG 2       /* the flag key: not null selects the flagged marker */
#define RK_REQUIRED 4   /* the required key */
#define RK_STRING 8     /* its value, when present, must be a string */
#define RK_NESTED 16    /* its array value settles whole: each element under the nested rule */

typedef struct {
    char text[RULE_NAME_MAX];
    Py_ssize_t len;
    int bits;
    PyObject *marker;   /* a data key (the kind is the key): kinds[key], else NULL */
    PyObject *flagged;  /* ... and flagged[key] (NULL: none) */
} RuleKey;

typedef struct {
    char text[RULE_NAME_MAX];
    Py_ssize_t len;
    PyObject *marker;
    PyObject *flagged;
} RuleKind;

typedef struct Rule {
    int by_key;                   /* the kind is the one data key the object has */
    int has_required;
    Py_ssize_t nkeys;
    RuleKey keys[RULE_MAX_KEYS];
    Py_ssize_t nkinds;
    RuleKind *kinds;
    PyObject *none_marker;        /* kinds[None]: no type key (NULL: the type is required) */
    PyObject *none_flagged;
    /* The nested key's rule: an array there whose elements all settle under it stands, with
     * the object holding it, as a list of their markers (of items_type). NULL: none. */
    const struct Rule *nested;
    PyObject *nested_capsule;     /* owns `nested` */
    PyObject *items_type;
    Py_ssize_t items_marker;      /* where an items_type instance keeps the object's marker */
} Rule;

static inline const RuleKey *
rule_key(const Rule *rule, const char *text, Py_ssize_t len)
{
    for (Py_ssize_t i = 0; i < rule->nkeys; i++) {
        const RuleKey *k = &rule->keys[i];
        if (k->len == len && same_bytes(k->text, text, len)) return k;
    }
    return NULL;
}

static inline const RuleKind *
rule_kind(const Rule *rule, const char *text, Py_ssize_t len)
{
    for (Py_ssize_t i = 0; i < rule->nkinds; i++) {
        const RuleKind *k = &rule->kinds[i];
        if (k->len == len && same_bytes(k->text, text, len)) return k;
    }
    return NULL;
}

static void
rule_free(PyObject *capsule)
{
    Rule *rule = PyCapsule_GetPointer(capsule, RULE_CAPSULE);
    if (rule == NULL) return;
    for (Py_ssize_t i = 0; i < rule->nkeys; i++) {
        Py_XDECREF(rule->keys[i].marker);
        Py_XDECREF(rule->keys[i].flagged);
    }
    for (Py_ssize_t i = 0; i < rule->nkinds; i++) {
        Py_XDECREF(rule->kinds[i].marker);
        Py_XDECREF(rule->kinds[i].flagged);
    }
    Py_XDECREF(rule->none_marker);
    Py_XDECREF(rule->none_flagged);
    Py_XDECREF(rule->nested_capsule);
    Py_XDECREF(rule->items_type);
    PyMem_Free(rule->kinds);
    PyMem_Free(rule);
}

/* The bytes of a rule name (short ASCII), or -1 with ValueError. */
static Py_ssize_t
rule_name(PyObject *name, char *out)
{
    if (!PyUnicode_CheckExact(name) || !PyUnicode_IS_ASCII(name) ||
            PyUnicode_GET_LENGTH(name) > RULE_NAME_MAX) {
        PyErr_Format(PyExc_ValueError, "settle rule names must be ASCII strings of at most %d "
                     "characters, not %R", RULE_NAME_MAX, name);
        return -1;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(name);
    memcpy(out, PyUnicode_DATA(name), (size_t)len);
    return len;
}

/* A new reference to mapping[key] (NULL without error when absent). */
static PyObject *
marker_of(PyObject *mapping, PyObject *key)
{
    PyObject *found = PyDict_GetItemWithError(mapping, key);
    return Py_XNewRef(found);
}

static PyObject *
strict_compile_rule(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyTuple_CheckExact(args[0]) || PyTuple_GET_SIZE(args[0]) != 9 ||
            !PyType_Check(args[1]) || !PyType_IsSubtype((PyTypeObject *)args[1], &PyList_Type)) {
        PyErr_SetString(PyExc_TypeError, "compile_rule(rule, items_type) takes a settle rule "
                        "tuple and a list subclass");
        return NULL;
    }
    PyObject *rule_tuple = args[0];
    PyObject *type_key = PyTuple_GET_ITEM(rule_tuple, 0);
    PyObject *allowed = PyTuple_GET_ITEM(rule_tuple, 1);
    PyObject *kinds = PyTuple_GET_ITEM(rule_tuple, 2);
    PyObject *required = PyTuple_GET_ITEM(rule_tuple, 3);
    PyObject *strings = PyTuple_GET_ITEM(rule_tuple, 4);
    PyObject *flag = PyTuple_GET_ITEM(rule_tuple, 5);
    PyObject *flagged = PyTuple_GET_ITEM(rule_tuple, 6);
    PyObject *nested_key = PyTuple_GET_ITEM(rule_tuple, 7);
    PyObject *nested = PyTuple_GET_ITEM(rule_tuple, 8);
    if (nested_key != Py_None && !(PyTuple_CheckExact(nested) && PyTuple_GET_SIZE(nested) == 10 &&
                                   PyCapsule_IsValid(PyTuple_GET_ITEM(nested, 9),
                                                     RULE_CAPSULE))) {
        PyErr_SetString(PyExc_TypeError, "a nested key needs the compiled rule of its elements");
        return NULL;
    }
    if (!PyFrozenSet_CheckExact(allowed) || !PyDict_CheckExact(kinds) ||
            !PyFrozenSet_CheckExact(strings) || !PyDict_CheckExact(flagged)) {
        PyErr_SetString(PyExc_TypeError, "compile_rule takes a settle rule tuple");
        return NULL;
    }
    if (PySet_GET_SIZE(allowed) > RULE_MAX_KEYS) {
        PyErr_Format(PyExc_ValueError, "a settle rule allows at most %d keys", RULE_MAX_KEYS);
        return NULL;
    }
    Rule *rule = PyMem_Calloc(1, sizeof(Rule));
    if (rule == NULL) return PyErr_NoMemory();
    PyObject *capsule = PyCapsule_New(rule, RULE_CAPSULE, rule_free);
    if (capsule == NULL) { PyMem_Free(rule); return NULL; }
    rule->by_key = type_key == Py_None;
    rule->has_required = required != Py_None;
    if (nested_key != Py_None) {
        rule->nested_capsule = Py_NewRef(PyTuple_GET_ITEM(nested, 9));
        rule->nested = PyCapsule_GetPointer(rule->nested_capsule, RULE_CAPSULE);
        rule->items_type = Py_NewRef(args[1]);
        /* the slot `marker` of the list subclass: its member descriptor knows where it is */
        PyObject *slot = PyObject_GetAttrString(args[1], "marker");
        if (slot == NULL) goto error;
        int ok = Py_IS_TYPE(slot, &PyMemberDescr_Type) &&
                 ((PyMemberDescrObject *)slot)->d_member->type == Py_T_OBJECT_EX;
        if (ok) rule->items_marker = ((PyMemberDescrObject *)slot)->d_member->offset;
        Py_DECREF(slot);
        if (!ok) {
            PyErr_SetString(PyExc_TypeError, "items_type needs a __slots__ member 'marker'");
            goto error;
        }
    }
    PyObject *keys = PySequence_List(allowed);
    if (keys == NULL) goto error;
    if (PyList_Sort(keys) < 0) { Py_DECREF(keys); goto error; }  /* the same order every run */
    Py_ssize_t pos;
    PyObject *key;
    for (pos = 0; pos < PyList_GET_SIZE(keys); pos++) {
        key = PyList_GET_ITEM(keys, pos);
        RuleKey *k = &rule->keys[rule->nkeys];
        if ((k->len = rule_name(key, k->text)) < 0) { Py_DECREF(keys); goto error; }
        rule->nkeys++;
        int in_strings = PySet_Contains(strings, key);
        if (in_strings < 0) { Py_DECREF(keys); goto error; }
        k->bits = (type_key != Py_None && PyUnicode_Compare(key, type_key) == 0 ? RK_TYPE : 0) |
                  (flag != Py_None && PyUnicode_Compare(key, flag) == 0 ? RK_FLAG : 0) |
                  (required != Py_None && PyUnicode_Compare(key, required) == 0 ? RK_REQUIRED : 0) |
                  (in_strings ? RK_STRING : 0) |
                  (nested_key != Py_None && PyUnicode_Compare(key, nested_key) == 0 ?
                   RK_NESTED : 0);
        if (rule->by_key) {
            k->marker = marker_of(kinds, key);
            k->flagged = marker_of(flagged, key);
        }
        if (PyErr_Occurred()) { Py_DECREF(keys); goto error; }
    }
    Py_DECREF(keys);
    if (!rule->by_key) {
        rule->kinds = PyMem_Calloc((size_t)PyDict_GET_SIZE(kinds) + 1, sizeof(RuleKind));
        if (rule->kinds == NULL) { PyErr_NoMemory(); goto error; }
        PyObject *marker;
        pos = 0;
        while (PyDict_Next(kinds, &pos, &key, &marker)) {
            if (key == Py_None) {
                rule->none_marker = Py_NewRef(marker);
                rule->none_flagged = marker_of(flagged, Py_None);
                if (PyErr_Occurred()) goto error;
                continue;
            }
            RuleKind *k = &rule->kinds[rule->nkinds];
            if ((k->len = rule_name(key, k->text)) < 0) goto error;
            rule->nkinds++;
            k->marker = Py_NewRef(marker);
            k->flagged = marker_of(flagged, key);
            if (PyErr_Occurred()) goto error;
        }
    }
    return capsule;
error:
    Py_DECREF(capsule);
    return NULL;
}

static int try_settle(Parser *ps, const Rule *rule, PyObject **out);

/* After a value read speculatively in a container closed by `close`: 1 past a ',' (another
 * member or element follows), 0 past `close`, -1 on anything else (the caller rewinds). */
static inline int
next_speculative(Parser *ps, unsigned char close)
{
    skip_ws(ps);
    if (ps->p >= ps->end) return -1;
    if (*ps->p == ',') {
        ps->p++;
        skip_ws(ps);
        return 1;
    }
    if (*ps->p == close) {
        ps->p++;
        return 0;
    }
    return -1;
}

/* The markers of an array (ps->p at '[') whose elements all settle under `rule`, as a new
 * list of `items_type`; NULL (no error set, ps->p anywhere: the caller rewinds) if one does
 * not. */
static PyObject *
settle_items(Parser *ps, const Rule *rule, PyObject *items_type)
{
    if (++ps->depth > ps->max_depth) return NULL;
    ps->p++;  /* '[' */
    /* only allocated (its __init__ is not run): the caller sets its marker */
    PyObject *none = PyTuple_New(0);
    PyObject *items = none == NULL ? NULL :
        ((PyTypeObject *)items_type)->tp_new((PyTypeObject *)items_type, none, NULL);
    Py_XDECREF(none);
    if (items == NULL) goto fail;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        ps->depth--;
        return items;
    }
    for (;;) {
        PyObject *marker;
        if (ps->p >= ps->end || *ps->p != '{' || !try_settle(ps, rule, &marker)) goto fail;
        int rc = PyList_Append(items, marker);
        Py_DECREF(marker);
        if (rc < 0) goto fail;
        int more = next_speculative(ps, ']');
        if (more < 0) goto fail;
        if (!more) break;
    }
    ps->depth--;
    return items;
fail:
    Py_XDECREF(items);
    PyErr_Clear();
    return NULL;
}

/* 1 with *out a new reference to the marker (or, for an object whose nested array settled,
 * to the list of that array's markers), 0 (rewound) if the object is not settled. */
static int
try_settle(Parser *ps, const Rule *rule, PyObject **out)
{
    const unsigned char *save = ps->p;
    int save_depth = ps->depth;
    const RuleKind *kind = NULL;      /* the kind the type key named */
    const RuleKey *data = NULL;       /* by-key rules: the data key present */
    uint64_t seen = 0;                /* the rule keys met so far */
    PyObject *items = NULL;           /* the nested array's markers, once settled */
    int has_required = !rule->has_required;
    int flag_set = 0;
    if (++ps->depth > ps->max_depth) goto rewind;
    ps->p++;  /* '{' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        goto members_done;
    }
    for (;;) {
        if (ps->p >= ps->end || *ps->p != '"') goto rewind;
        ps->p++;
        Str text;
        if (scan_string(ps, &text, 1) < 0 || !text.ascii) goto rewind;
        const RuleKey *k = rule_key(rule, text.text, text.len);
        if (k == NULL) goto rewind;
        uint64_t bit = (uint64_t)1 << (k - rule->keys);
        if (seen & bit) goto rewind;  /* a duplicate: the building path reports it */
        seen |= bit;
        if (k->marker != NULL) {
            if (data != NULL) goto rewind;  /* two data keys: not one kind */
            data = k;
        }
        if (k->bits & RK_REQUIRED) has_required = 1;
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') goto rewind;
        ps->p++;
        skip_ws(ps);
        if ((k->bits & RK_FLAG) && !(ps->p < ps->end && *ps->p == 'n')) flag_set = 1;
        if (k->bits & RK_TYPE) {
            if (ps->p >= ps->end || *ps->p != '"') goto rewind;
            ps->p++;
            Str value;
            if (scan_string(ps, &value, 1) < 0 || !value.ascii) goto rewind;
            kind = rule_kind(rule, value.text, value.len);
            if (kind == NULL) goto rewind;
        } else if ((k->bits & RK_NESTED) && ps->p < ps->end && *ps->p == '[') {
            items = settle_items(ps, rule->nested, rule->items_type);
            if (items == NULL) goto rewind;
        } else if ((k->bits & RK_NESTED) && !(k->bits & RK_STRING)) {
            goto rewind;  /* a nested key holds an array (or, if listed, a string) */
        } else if (((k->bits & RK_STRING) && (ps->p >= ps->end || *ps->p != '"')) ||
                   skip_value(ps, NULL) < 0) {
            goto rewind;
        }
        int more = next_speculative(ps, '}');
        if (more < 0) goto rewind;
        if (!more) break;
    }
members_done:
    if (!has_required) goto rewind;
    PyObject *marker;
    if (rule->by_key) {
        if (data == NULL) goto rewind;
        marker = flag_set ? data->flagged : data->marker;
    } else if (kind != NULL) {
        marker = flag_set ? kind->flagged : kind->marker;
    } else {
        marker = flag_set ? rule->none_flagged : rule->none_marker;
    }
    if (marker == NULL) goto rewind;
    ps->depth = save_depth;
    if (items != NULL) {
        /* charged as the list it is; past the budget the caller validates the rest */
        charge(ps, cfg_value_cost * PyList_GET_SIZE(items));
        PyObject **held = (PyObject **)((char *)items + rule->items_marker);
        Py_XSETREF(*held, Py_NewRef(marker));
        *out = items;
        return 1;
    }
    *out = Py_NewRef(marker);
    return 1;
rewind:
    Py_XDECREF(items);
    PyErr_Clear();   /* the building path meets the same input and reports it */
    ps->p = save;
    ps->depth = save_depth;
    return 0;
}

static PyObject *
build_object(Parser *ps, PyObject *node)
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
        Str text;
        if (scan_key(ps, &text) < 0) { Py_DECREF(dict); return NULL; }
        if (!text.ascii && charge(ps, wide_extra(text.text, text.len))) {
            int rc = finish_object(ps, dict, &text, 1);
            Py_DECREF(dict);
            if (rc < 0) return NULL;
            ps->depth--;
            Py_RETURN_NONE;
        }
        PyObject *key;
        KeySlot *slot = NULL;
        if (text.ascii && text.len <= KEY_CACHE_MAX_LEN) {
            key = cached_key(text.text, text.len, &slot);
        } else if (text.ascii) {
            key = ascii_string(text.text, text.len);
        } else {
            key = PyUnicode_DecodeUTF8(text.text, text.len, "strict");
        }
        if (key == NULL) { Py_DECREF(dict); return NULL; }
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            Py_DECREF(key); Py_DECREF(dict);
            return fail(ps, "expected ':'");
        }
        ps->p++;
        skip_ws(ps);
        int mode = 0;
        if (ps->p < ps->end && (*ps->p == '"' || *ps->p == '{' || *ps->p == '[')) {
            mode = key_mode(key, slot);
            if (mode < 0) { Py_DECREF(key); Py_DECREF(dict); return NULL; }
        }
        PyObject *value = build_value(ps, mode, node_child(node, key));
        if (value == NULL) { Py_DECREF(key); Py_DECREF(dict); return NULL; }
        if (ps->over) {
            /* the value was not built: the key must still be unique among the others */
            Py_DECREF(value);
            int rc = 0;
            if (PyDict_Contains(dict, key)) {
                fail_duplicate(ps, key);
                rc = -1;
            } else if (PyDict_SetItem(dict, key, Py_None) < 0) {
                rc = -1;
            }
            Py_DECREF(key);
            if (rc == 0) rc = finish_object(ps, dict, NULL, 2);
            Py_DECREF(dict);
            if (rc < 0) return NULL;
            ps->depth--;
            Py_RETURN_NONE;
        }
        int rc = PyDict_SetItem(dict, key, value);
        Py_DECREF(value);
        members++;
        if (rc < 0 || PyDict_GET_SIZE(dict) != members) {
            if (rc == 0) fail_duplicate(ps, key);
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
build_array(Parser *ps, PyObject *node)
{
    PyObject *element = node_field(node, 1);
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
        PyObject *value = build_value(ps, 0, element);
        if (value == NULL) { Py_DECREF(list); return NULL; }
        if (ps->over) {
            Py_DECREF(value);
            Py_DECREF(list);
            if (skip_elements(ps, 1, NULL) < 0) return NULL;
            ps->depth--;
            Py_RETURN_NONE;
        }
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

/* A fresh placeholder of a configured class. When the class keeps its base's __init__ (which
 * does nothing without arguments) calling it is only its __new__: that is called directly. */
static PyObject *
new_placeholder(PyObject *cls)
{
    PyTypeObject *type = (PyTypeObject *)cls;
    if (PyType_Check(cls) && type->tp_new != NULL &&
            ((PyType_IsSubtype(type, &PyDict_Type) && type->tp_init == PyDict_Type.tp_init) ||
             (PyType_IsSubtype(type, &PyList_Type) && type->tp_init == PyList_Type.tp_init))) {
        PyObject *args = PyTuple_New(0);
        if (args == NULL) return NULL;
        PyObject *res = type->tp_new(type, args, NULL);
        Py_DECREF(args);
        return res;
    }
    return PyObject_CallNoArgs(cls);
}

/* A non-empty object or array under a skip key: validated, handed back as a placeholder. */
static PyObject *
build_skipped(Parser *ps)
{
    int is_object = *ps->p == '{';
    int empty;
    if (skip_value(ps, &empty) < 0) return NULL;
    if (empty) return is_object ? PyDict_New() : PyList_New(0);
    return new_placeholder(is_object ? cfg_skipped_object : cfg_skipped_array);
}

/* One value, charged its cost first; once the budget is spent, validated only (None). */
static PyObject *
build_value(Parser *ps, int mode, PyObject *node)
{
    let_others_run(ps);
    if (ps->p >= ps->end) return fail(ps, "unexpected end of input");
    if (charge(ps, cfg_value_cost)) {
        if (skip_value(ps, NULL) < 0) return NULL;
        Py_RETURN_NONE;
    }
    switch (*ps->p) {
    case '{': {
        if (mode & MODE_SKIP) return build_skipped(ps);
        PyObject *rule = node_field(node, 2);
        PyObject *marker;
        if (rule != NULL && try_settle(ps, PyCapsule_GetPointer(PyTuple_GET_ITEM(rule, 9),
                                                               RULE_CAPSULE), &marker)) {
            return marker;
        }
        return build_object(ps, node);
    }
    case '[':
        if (mode & MODE_SKIP) return build_skipped(ps);
        return build_array(ps, node);
    case '"': {
        ps->p++;
        const unsigned char *begin = ps->p;
        Str s;
        /* A string under a drop key is only measured first: a long one is never unescaped. */
        int measure = (mode & MODE_DROP) != 0;
        if ((measure ? measure_string(ps, &s) : scan_string(ps, &s, 1)) < 0) return NULL;
        if (measure && s.text == NULL && s.len <= cfg_keep) {
            ps->p = begin;
            if (scan_string(ps, &s, 1) < 0) return NULL;
        }
        return build_string(ps, &s, mode);
    }
    case 't':
        if (expect_literal(ps, "true", 4) < 0) return NULL;
        Py_RETURN_TRUE;
    case 'f':
        if (expect_literal(ps, "false", 5) < 0) return NULL;
        Py_RETURN_FALSE;
    case 'n':
        if (expect_literal(ps, "null", 4) < 0) return NULL;
        Py_RETURN_NONE;
    default: {
        Num num;
        if (scan_number(ps, &num) < 0) return NULL;
        return build_number(ps, &num);
    }
    }
}

/* -- module ---------------------------------------------------------------------------------- */

/* Whether `node` has the shape try_settle and the builders rely on (checked once per call). */
static int
valid_node(PyObject *node, int depth)
{
    if (depth > MAX_DEPTH || !PyTuple_CheckExact(node) || PyTuple_GET_SIZE(node) != 3) return 0;
    PyObject *children = PyTuple_GET_ITEM(node, 0);
    PyObject *element = PyTuple_GET_ITEM(node, 1);
    PyObject *rule = PyTuple_GET_ITEM(node, 2);
    if (!PyDict_CheckExact(children)) return 0;
    PyObject *key, *child;
    Py_ssize_t pos = 0;
    while (PyDict_Next(children, &pos, &key, &child)) {
        if (!PyUnicode_CheckExact(key) || !valid_node(child, depth + 1)) return 0;
    }
    if (element != Py_None && !valid_node(element, depth + 1)) return 0;
    if (rule == Py_None) return 1;
    return PyTuple_CheckExact(rule) && PyTuple_GET_SIZE(rule) == 10 &&
           PyCapsule_IsValid(PyTuple_GET_ITEM(rule, 9), RULE_CAPSULE);
}

static PyObject *
strict_loads(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (cfg_keys == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_strictjson.configure() was not called");
        return NULL;
    }
    if (nargs != 3 && nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "loads(data, max_depth, budget, settle=None) takes 3 or 4 arguments");
        return NULL;
    }
    PyObject *settle = nargs == 4 && args[3] != Py_None ? args[3] : NULL;
    if (settle != NULL && !valid_node(settle, 0)) {
        PyErr_SetString(PyExc_TypeError, "settle must be a settle node (see body.settle_table)");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    long max_depth = PyLong_AsLong(args[1]);
    Py_ssize_t budget = PyLong_AsSsize_t(args[2]);
    if ((max_depth == -1 || budget == -1) && PyErr_Occurred()) {
        PyBuffer_Release(&view);
        return NULL;
    }
    Parser ps = {0};
    ps.start = ps.p = (const unsigned char *)view.buf;
    ps.end = ps.start + view.len;
    ps.max_depth = max_depth < MAX_DEPTH ? (int)max_depth : MAX_DEPTH;
    ps.budget = budget;
    ps.next_yield = ps.start + YIELD_BYTES;
    PyObject *result = NULL;
    if (view.len >= 3 && memcmp(ps.p, "\xEF\xBB\xBF", 3) == 0) {
        fail(&ps, "byte order mark");
        goto done;
    }
    skip_ws(&ps);
    /* Nothing built here can form a cycle, and the budget bounds what is built: a collection
     * in the middle of it would only walk the new objects. */
    int gc_was_on = PyGC_Disable();
    result = build_value(&ps, 0, settle);
    if (gc_was_on) PyGC_Enable();
    if (result != NULL) {
        skip_ws(&ps);
        if (ps.p != ps.end) {
            Py_CLEAR(result);
            fail(&ps, "trailing characters");
        } else if (ps.over) {
            Py_CLEAR(result);
            PyErr_Format(LimitError, "the decoded body would exceed %zd bytes", budget);
        }
    }
done:
    PyMem_RawFree(ps.buf);
    PyMem_Free(ps.arena);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
strict_configure(PyObject *self, PyObject *args)
{
    PyObject *keys, *long_type, *dropped, *skipped_object, *skipped_array;
    Py_ssize_t keep, value_cost;
    if (!PyArg_ParseTuple(args, "O!OOOOnn", &PyDict_Type, &keys, &long_type, &dropped,
                          &skipped_object, &skipped_array, &keep, &value_cost)) {
        return NULL;
    }
    /* a copy: the modes are remembered per cached key, so the table must not change under them */
    PyObject *table = PyDict_Copy(keys);
    if (table == NULL) return NULL;
    Py_XSETREF(cfg_keys, table);
    Py_XSETREF(cfg_long_type, Py_NewRef(long_type));
    Py_XSETREF(cfg_dropped, Py_NewRef(dropped));
    Py_XSETREF(cfg_skipped_object, Py_NewRef(skipped_object));
    Py_XSETREF(cfg_skipped_array, Py_NewRef(skipped_array));
    cfg_keep = keep;
    cfg_value_cost = value_cost;
    for (Py_ssize_t i = 0; i < KEY_CACHE_SIZE; i++) key_cache[i].mode = -1;  /* new key table */
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"loads", (PyCFunction)(void (*)(void))strict_loads, METH_FASTCALL,
     "loads(data, max_depth, budget, settle=None) -> value; raises StrictJSONError or "
     "StructureLimitError."},
    {"compile_rule", (PyCFunction)(void (*)(void))strict_compile_rule, METH_FASTCALL,
     "compile_rule(rule, items_type) -> the rule as try_settle reads it (see "
     "body.settle_table)."},
    {"configure", strict_configure, METH_VARARGS,
     "configure(keys, long_type, dropped, skipped_object, skipped_array, keep, value_cost); "
     "the key table is copied: configure again to change it."},
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
    LimitError = PyErr_NewException("modelguard._strictjson.StructureLimitError",
                                    PyExc_ValueError, NULL);
    if (StrictError == NULL || LimitError == NULL ||
            PyModule_AddObjectRef(m, "StrictJSONError", StrictError) < 0 ||
            PyModule_AddObjectRef(m, "StructureLimitError", LimitError) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
