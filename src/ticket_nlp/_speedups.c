/* The per-ticket loops of the hot path, in C.
 *
 * Batch scoring spends most of its time in small loops that run once per ticket: marking negation
 * over the segmented words, looking up word and character n-grams in the vocabularies, and
 * finding the evidence terms in the buyer's text. Each function here is a line-by-line port of
 * its Python twin (named in its docstring), which stays the reference: ticket_nlp.speedups picks
 * this module when it is built and falls back to the Python when it is not, and
 * tests/code/test_speedups.py asserts both give identical results on the whole corpus.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

/* text.PUNCT_RE's character class: whitespace, ASCII and CJK punctuation, general punctuation. */
static int
is_punct_char(Py_UCS4 c)
{
    return Py_UNICODE_ISSPACE(c)
        || (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') || (c >= '{' && c <= '~')
        || (c >= 0x3000 && c <= 0x303f) || (c >= 0xff01 && c <= 0xff0f) || (c >= 0xff1a && c <= 0xff20)
        || (c >= 0x2010 && c <= 0x2027) || (c >= 0x2030 && c <= 0x205e) || c == 0x2026 || c == 0x00b7;
}

/* 1 when every character of a non-empty string passes the test, 0 otherwise. */
static int
all_chars(PyObject *s, int (*test)(Py_UCS4))
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    if (n == 0)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!test(PyUnicode_READ(kind, data, i)))
            return 0;
    return 1;
}

static int
is_space_char(Py_UCS4 c)
{
    return Py_UNICODE_ISSPACE(c);
}

PyDoc_STRVAR(mark_negation_doc,
"mark_negation(words, negators, breakers, scope, prefix) -> list[str]\n\n"
"Segmenter.tokens + text.mark_negation: drop whitespace and punctuation tokens and prefix the\n"
"``scope`` words after a negator with ``prefix``; punctuation and scope breakers end a negation.");

static PyObject *
mark_negation(PyObject *self, PyObject *args)
{
    PyObject *words, *negators, *breakers, *prefix;
    Py_ssize_t scope;
    if (!PyArg_ParseTuple(args, "O!O!O!nU:mark_negation", &PyList_Type, &words, &PyFrozenSet_Type, &negators,
                          &PyFrozenSet_Type, &breakers, &scope, &prefix))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(words);
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t left = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *tok = PyList_GET_ITEM(words, i);
        if (!PyUnicode_Check(tok)) {
            PyErr_SetString(PyExc_TypeError, "mark_negation: words must be str");
            goto fail;
        }
        if (all_chars(tok, is_space_char))
            continue; /* Segmenter.tokens drops these before marking: they end nothing */
        if (all_chars(tok, is_punct_char)) {
            left = 0;
            continue;
        }
        int negator = PySet_Contains(negators, tok);
        int breaker = negator ? 0 : PySet_Contains(breakers, tok);
        if (negator < 0 || breaker < 0)
            goto fail;
        PyObject *item;
        if (negator) {
            left = scope;
            item = Py_NewRef(tok);
        }
        else if (breaker) {
            left = 0;
            item = Py_NewRef(tok);
        }
        else if (left) {
            left--;
            item = PyUnicode_Concat(prefix, tok);
            if (item == NULL)
                goto fail;
        }
        else {
            item = Py_NewRef(tok);
        }
        int err = PyList_Append(out, item);
        Py_DECREF(item);
        if (err < 0)
            goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* --- evidence spans ------------------------------------------------------------------------- */
typedef struct {
    Py_ssize_t start, end;
    double weight;
} Span;

static int
span_before(const Span *a, const Span *b) /* Python's tuple order on (start, end, weight) */
{
    if (a->start != b->start)
        return a->start < b->start;
    if (a->end != b->end)
        return a->end < b->end;
    return a->weight < b->weight;
}

static const char *NEGATOR_WORDS[] = {"没有", "没", "不", "无", "未", "非", "别"};
#define N_NEGATOR_WORDS 7
static PyObject *negator_strings[N_NEGATOR_WORDS];

/* model._term_spans for a negated term: the span starts at the nearest negator in the 6 characters
 * before the term ("没有破损", not "破损"); the negators are tried in order, each from the right. */
static Py_ssize_t
negated_begin(PyObject *aligned, Py_ssize_t start)
{
    Py_ssize_t lo = start - 6 > 0 ? start - 6 : 0;
    for (int k = 0; k < N_NEGATOR_WORDS; k++) {
        Py_ssize_t at = PyUnicode_Find(aligned, negator_strings[k], lo, start, -1);
        if (at == -2)
            return -2;
        if (at >= 0)
            return at;
    }
    return start;
}

PyDoc_STRVAR(evidence_spans_doc,
"evidence_spans(aligned, index, columns, weights, terms, term_of, keep, min_share) -> list[tuple]\n\n"
"The loop of Classifier._evidence: find each feature's term (``terms[column]``, else\n"
"``term_of(column)``: a (term, negated) pair) at most twice in ``aligned``, map the spans through\n"
"``index`` (a list, or None for the identity), merge overlapping spans adding their weights, and\n"
"return the ``keep`` strongest as (start, end, weight), dropping those under ``min_share`` of the\n"
"strongest.");

static PyObject *
evidence_spans(PyObject *self, PyObject *args)
{
    PyObject *aligned, *index, *columns, *weights, *terms, *term_of;
    Py_ssize_t keep;
    double min_share;
    if (!PyArg_ParseTuple(args, "UOO!O!O!Ond:evidence_spans", &aligned, &index, &PyList_Type, &columns, &PyList_Type,
                          &weights, &PyDict_Type, &terms, &term_of, &keep, &min_share))
        return NULL;
    if (index != Py_None && !PyList_Check(index)) {
        PyErr_SetString(PyExc_TypeError, "evidence_spans: index must be a list or None");
        return NULL;
    }
    Py_ssize_t n_cols = PyList_GET_SIZE(columns);
    if (PyList_GET_SIZE(weights) != n_cols) {
        PyErr_SetString(PyExc_ValueError, "evidence_spans: columns and weights differ in length");
        return NULL;
    }
    Span stack_spans[64];
    Span *spans = n_cols * 2 <= 64 ? stack_spans : PyMem_Malloc(sizeof(Span) * n_cols * 2);
    if (spans == NULL)
        return PyErr_NoMemory();
    Py_ssize_t n = 0, length = PyUnicode_GET_LENGTH(aligned);
    PyObject *result = NULL;

    for (Py_ssize_t c = 0; c < n_cols; c++) {
        PyObject *column = PyList_GET_ITEM(columns, c);
        double weight = PyFloat_AsDouble(PyList_GET_ITEM(weights, c));
        if (weight == -1.0 && PyErr_Occurred())
            goto done;
        PyObject *pair = PyDict_GetItemWithError(terms, column);
        if (pair != NULL)
            Py_INCREF(pair);
        else if (PyErr_Occurred() || (pair = PyObject_CallOneArg(term_of, column)) == NULL)
            goto done;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0))) {
            Py_DECREF(pair);
            PyErr_SetString(PyExc_TypeError, "evidence_spans: a term must be a (str, bool) pair");
            goto done;
        }
        PyObject *term = PyTuple_GET_ITEM(pair, 0);
        int negated = PyObject_IsTrue(PyTuple_GET_ITEM(pair, 1));
        Py_ssize_t term_length = PyUnicode_GET_LENGTH(term);
        Py_ssize_t start = term_length ? PyUnicode_Find(aligned, term, 0, length, 1) : -1;
        for (int found = 0; start >= 0 && found < 2; found++) {
            Py_ssize_t begin = negated ? negated_begin(aligned, start) : start;
            if (begin == -2) {
                Py_DECREF(pair);
                goto done;
            }
            Py_ssize_t s = begin, e = start + term_length;
            if (index != Py_None) {
                PyObject *first = PyList_GET_ITEM(index, s), *last = PyList_GET_ITEM(index, e - 1);
                s = PyLong_AsSsize_t(first);
                e = PyLong_AsSsize_t(last) + 1;
                if ((s == -1 || e == 0) && PyErr_Occurred()) {
                    Py_DECREF(pair);
                    goto done;
                }
            }
            spans[n++] = (Span){s, e, weight};
            start = PyUnicode_Find(aligned, term, start + 1, length, 1);
        }
        Py_DECREF(pair);
        if (start == -2)
            goto done;
    }
    /* sort by (start, end, weight): insertion sort, there are at most a few dozen */
    for (Py_ssize_t i = 1; i < n; i++) {
        Span s = spans[i];
        Py_ssize_t j = i;
        while (j > 0 && span_before(&s, &spans[j - 1])) {
            spans[j] = spans[j - 1];
            j--;
        }
        spans[j] = s;
    }
    /* merge overlapping (not merely adjacent) spans, adding their weights */
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (m && spans[i].start < spans[m - 1].end) {
            if (spans[i].end > spans[m - 1].end)
                spans[m - 1].end = spans[i].end;
            spans[m - 1].weight += spans[i].weight;
        }
        else {
            spans[m++] = spans[i];
        }
    }
    /* strongest first; stable, as Python's sort is */
    for (Py_ssize_t i = 1; i < m; i++) {
        Span s = spans[i];
        Py_ssize_t j = i;
        while (j > 0 && s.weight > spans[j - 1].weight) {
            spans[j] = spans[j - 1];
            j--;
        }
        spans[j] = s;
    }
    result = PyList_New(0);
    if (result == NULL || m == 0)
        goto done;
    double floor = spans[0].weight * min_share;
    for (Py_ssize_t i = 0; i < m && i < keep; i++) {
        if (spans[i].weight < floor)
            continue;
        PyObject *item = Py_BuildValue("(nnd)", spans[i].start, spans[i].end, spans[i].weight);
        if (item == NULL || PyList_Append(result, item) < 0) {
            Py_XDECREF(item);
            Py_CLEAR(result);
            goto done;
        }
        Py_DECREF(item);
    }
done:
    if (spans != stack_spans)
        PyMem_Free(spans);
    return result;
}

/* --- n-gram lookup tables ------------------------------------------------------------------ */
/* Both vocabularies become open-addressing tables of 64-bit n-gram hashes (linear probing, at most
 * 2/3 full): a lookup costs about one cache miss, where a Python dict costs a new string, its hash
 * and two misses, and binary search in the sorted hash array one miss per probe.
 * Character n-grams hash as features._hashed_ngrams does (seed n, then h = h * 1000003 ^ code);
 * word n-grams hash the code points of the n-gram string ("袖口 开线") from WORD_SEED. */
typedef struct {
    uint64_t key;
    int64_t column; /* -1: empty slot */
} Slot;

#define HASH_MULT 1000003ULL
#define WORD_SEED 0x9E3779B97F4A7C15ULL

static inline uint64_t
slot_of(uint64_t key, uint64_t mask)
{
    return (key * 0x9E3779B97F4A7C15ULL >> 17) & mask;
}

static inline uint64_t
hash_str(uint64_t h, PyObject *s)
{
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    for (Py_ssize_t i = 0, n = PyUnicode_GET_LENGTH(s); i < n; i++)
        h = (h * HASH_MULT) ^ PyUnicode_READ(kind, data, i);
    return h;
}

static PyObject *
new_table(Py_ssize_t n, Slot **slots, uint64_t *capacity)
{
    *capacity = 16;
    while (*capacity < (uint64_t)n + (uint64_t)n / 2 + 1)
        *capacity <<= 1;
    PyObject *table = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(*capacity * sizeof(Slot)));
    if (table == NULL)
        return NULL;
    *slots = (Slot *)PyBytes_AS_STRING(table);
    for (uint64_t i = 0; i < *capacity; i++)
        (*slots)[i] = (Slot){0, -1};
    return table;
}

/* 0 when inserted, -1 when another column has the same hash (a collision the caller must not hide) */
static int
insert(Slot *slots, uint64_t mask, uint64_t key, int64_t column)
{
    uint64_t at = slot_of(key, mask);
    while (slots[at].column != -1) {
        if (slots[at].key == key)
            return slots[at].column == column ? 0 : -1;
        at = (at + 1) & mask;
    }
    slots[at] = (Slot){key, column};
    return 0;
}

static inline int64_t
find(const Slot *slots, uint64_t mask, uint64_t key)
{
    uint64_t at = slot_of(key, mask);
    while (slots[at].column != -1 && slots[at].key != key)
        at = (at + 1) & mask;
    return slots[at].column;
}

PyDoc_STRVAR(ngram_table_doc,
"ngram_table(hashes) -> bytes\n\n"
"The lookup table of a CharNgramTfidf vocabulary (``hashes_``, uint64 bytes): hashes[i] -> column i.");

static PyObject *
ngram_table(PyObject *self, PyObject *args)
{
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*:ngram_table", &view))
        return NULL;
    Py_ssize_t n = view.len / (Py_ssize_t)sizeof(uint64_t);
    const uint64_t *hashes = view.buf;
    Slot *slots;
    uint64_t capacity;
    PyObject *table = new_table(n, &slots, &capacity);
    for (Py_ssize_t i = 0; table != NULL && i < n; i++)
        if (insert(slots, capacity - 1, hashes[i], i) < 0) {
            Py_CLEAR(table);
            PyErr_SetString(PyExc_ValueError, "ngram_table: two columns share a hash");
        }
    PyBuffer_Release(&view);
    return table;
}

PyDoc_STRVAR(word_table_doc,
"word_table(vocabulary) -> bytes\n\n"
"The lookup table of a word vocabulary (n-gram string -> column). ValueError if two n-grams\n"
"share a 64-bit hash: the caller then keeps the dict.");

static PyObject *
word_table(PyObject *self, PyObject *args)
{
    PyObject *vocabulary, *gram, *column;
    if (!PyArg_ParseTuple(args, "O!:word_table", &PyDict_Type, &vocabulary))
        return NULL;
    Slot *slots;
    uint64_t capacity;
    PyObject *table = new_table(PyDict_GET_SIZE(vocabulary), &slots, &capacity);
    Py_ssize_t pos = 0;
    while (table != NULL && PyDict_Next(vocabulary, &pos, &gram, &column)) {
        int64_t c = PyLong_AsLongLong(column);
        if (!PyUnicode_Check(gram) || (c == -1 && PyErr_Occurred())) {
            Py_CLEAR(table);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "word_table: vocabulary must map str to int");
        }
        else if (insert(slots, capacity - 1, hash_str(WORD_SEED, gram), c) < 0) {
            Py_CLEAR(table);
            PyErr_SetString(PyExc_ValueError, "word_table: two n-grams share a hash");
        }
    }
    return table;
}

static int
compare_columns(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Growable output of a CSR matrix: sorted column indices and their counts per row. */
typedef struct {
    int64_t *indptr, *indices, *found;
    double *counts;
    Py_ssize_t nnz, cap, found_cap;
} Csr;

static int
csr_init(Csr *m, Py_ssize_t rows)
{
    *m = (Csr){PyMem_Malloc(sizeof(int64_t) * (rows + 1)), PyMem_Malloc(sizeof(int64_t) * 1024),
               PyMem_Malloc(sizeof(int64_t) * 1024), PyMem_Malloc(sizeof(double) * 1024), 0, 1024, 1024};
    if (!m->indptr || !m->indices || !m->found || !m->counts) {
        PyErr_NoMemory();
        return -1;
    }
    m->indptr[0] = 0;
    return 0;
}

static int
csr_reserve_found(Csr *m, Py_ssize_t need)
{
    if (need <= m->found_cap)
        return 0;
    int64_t *grown = PyMem_Realloc(m->found, sizeof(int64_t) * need);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    m->found = grown;
    m->found_cap = need;
    return 0;
}

/* Sort the row's found columns, count repeats, append them as row ``row``. */
static int
csr_end_row(Csr *m, Py_ssize_t row, Py_ssize_t n_found)
{
    if (m->nnz + n_found > m->cap) {
        Py_ssize_t cap = (m->nnz + n_found) * 2;
        int64_t *indices = PyMem_Realloc(m->indices, sizeof(int64_t) * cap);
        if (indices == NULL)
            return PyErr_NoMemory(), -1;
        m->indices = indices;
        double *counts = PyMem_Realloc(m->counts, sizeof(double) * cap);
        if (counts == NULL)
            return PyErr_NoMemory(), -1;
        m->counts = counts;
        m->cap = cap;
    }
    qsort(m->found, (size_t)n_found, sizeof(int64_t), compare_columns);
    for (Py_ssize_t i = 0; i < n_found; i++) {
        if (i && m->found[i] == m->found[i - 1]) {
            m->counts[m->nnz - 1] += 1.0;
        }
        else {
            m->indices[m->nnz] = m->found[i];
            m->counts[m->nnz++] = 1.0;
        }
    }
    m->indptr[row + 1] = m->nnz;
    return 0;
}

static PyObject *
csr_result(Csr *m, Py_ssize_t rows)
{
    return Py_BuildValue("(y#y#y#)", (const char *)m->indptr, (Py_ssize_t)(sizeof(int64_t) * (rows + 1)),
                         (const char *)m->indices, (Py_ssize_t)(sizeof(int64_t) * m->nnz),
                         (const char *)m->counts, (Py_ssize_t)(sizeof(double) * m->nnz));
}

static void
csr_free(Csr *m)
{
    PyMem_Free(m->indptr);
    PyMem_Free(m->indices);
    PyMem_Free(m->found);
    PyMem_Free(m->counts);
}

PyDoc_STRVAR(word_ngram_counts_doc,
"word_ngram_counts(token_lists, min_n, max_n, table) -> (indptr, indices, counts)\n\n"
"inference.word_ngrams + vocabulary lookup + counting: per token list, the columns of its word\n"
"n-grams (tokens joined by a space) found in ``table`` (word_table), with their counts, as the raw\n"
"int64 / int64 / float64 arrays of a CSR matrix with sorted column indices.");

static PyObject *
word_ngram_counts(PyObject *self, PyObject *args)
{
    PyObject *token_lists;
    Py_ssize_t min_n, max_n;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "O!nny*:word_ngram_counts", &PyList_Type, &token_lists, &min_n, &max_n, &view))
        return NULL;
    const Slot *slots = view.buf;
    uint64_t mask = (uint64_t)(view.len / (Py_ssize_t)sizeof(Slot)) - 1;
    Py_ssize_t rows = PyList_GET_SIZE(token_lists);
    PyObject *result = NULL;
    Csr m;
    if (min_n < 1)
        min_n = 1;
    if (csr_init(&m, rows) < 0)
        goto done;
    for (Py_ssize_t r = 0; r < rows; r++) {
        PyObject *tokens = PyList_GET_ITEM(token_lists, r);
        if (!PyList_Check(tokens)) {
            PyErr_SetString(PyExc_TypeError, "word_ngram_counts: expected lists of str");
            goto done;
        }
        Py_ssize_t count = PyList_GET_SIZE(tokens), n_found = 0;
        for (Py_ssize_t i = 0; i < count; i++)
            if (!PyUnicode_Check(PyList_GET_ITEM(tokens, i))) {
                PyErr_SetString(PyExc_TypeError, "word_ngram_counts: expected lists of str");
                goto done;
            }
        if (csr_reserve_found(&m, count * (max_n - min_n + 1) + 1) < 0)
            goto done;
        for (Py_ssize_t n = min_n; n <= max_n; n++) {
            for (Py_ssize_t i = 0; i + n <= count; i++) {
                uint64_t h = WORD_SEED;
                for (Py_ssize_t k = 0; k < n; k++) {
                    if (k)
                        h = (h * HASH_MULT) ^ ' ';
                    h = hash_str(h, PyList_GET_ITEM(tokens, i + k));
                }
                int64_t column = find(slots, mask, h);
                if (column != -1)
                    m.found[n_found++] = column;
            }
        }
        if (csr_end_row(&m, r, n_found) < 0)
            goto done;
    }
    result = csr_result(&m, rows);
done:
    csr_free(&m);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(char_ngram_counts_doc,
"char_ngram_counts(texts, min_n, max_n, table) -> (indptr, indices, counts)\n\n"
"features._hashed_ngrams + CharNgramTfidf._counts: per text (NUL characters removed), the\n"
"columns of its character n-grams found in ``table`` (ngram_table), with their counts, as the raw\n"
"int64 / int64 / float64 arrays of a CSR matrix with sorted column indices.");

static PyObject *
char_ngram_counts(PyObject *self, PyObject *args)
{
    PyObject *texts;
    Py_ssize_t min_n, max_n;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "O!nny*:char_ngram_counts", &PyList_Type, &texts, &min_n, &max_n, &view))
        return NULL;
    const Slot *slots = view.buf;
    uint64_t mask = (uint64_t)(view.len / (Py_ssize_t)sizeof(Slot)) - 1;
    Py_ssize_t rows = PyList_GET_SIZE(texts), codes_cap = 256;
    uint64_t *codes = PyMem_Malloc(sizeof(uint64_t) * codes_cap);
    PyObject *result = NULL;
    Csr m;
    if (min_n < 1)
        min_n = 1;
    if (csr_init(&m, rows) < 0 || codes == NULL) {
        if (codes == NULL)
            PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t r = 0; r < rows; r++) {
        PyObject *text = PyList_GET_ITEM(texts, r);
        if (!PyUnicode_Check(text)) {
            PyErr_SetString(PyExc_TypeError, "char_ngram_counts: texts must be str");
            goto done;
        }
        int kind = PyUnicode_KIND(text);
        const void *data = PyUnicode_DATA(text);
        Py_ssize_t size = PyUnicode_GET_LENGTH(text), length = 0, n_found = 0;
        if (size > codes_cap) {
            uint64_t *grown = PyMem_Realloc(codes, sizeof(uint64_t) * size);
            if (grown == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            codes = grown;
            codes_cap = size;
        }
        for (Py_ssize_t i = 0; i < size; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c != 0)
                codes[length++] = c;
        }
        if (csr_reserve_found(&m, length * (max_n - min_n + 1) + 1) < 0)
            goto done;
        for (Py_ssize_t n = min_n; n <= max_n; n++) {
            for (Py_ssize_t i = 0; i + n <= length; i++) {
                uint64_t h = (uint64_t)n;
                for (Py_ssize_t k = 0; k < n; k++)
                    h = (h * HASH_MULT) ^ codes[i + k];
                int64_t column = find(slots, mask, h);
                if (column != -1)
                    m.found[n_found++] = column;
            }
        }
        if (csr_end_row(&m, r, n_found) < 0)
            goto done;
    }
    result = csr_result(&m, rows);
done:
    csr_free(&m);
    PyMem_Free(codes);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(join_tokens_doc,
"join_tokens(token_lists, prefix, mark) -> list[str]\n\n"
"features.tokens_to_text for each list: tokens joined, each token starting with ``prefix``\n"
"replaced by ``mark``, or by itself without the prefix when ``mark`` is None.");

static PyObject *
join_tokens(PyObject *self, PyObject *args)
{
    PyObject *token_lists, *prefix, *mark;
    if (!PyArg_ParseTuple(args, "O!UO:join_tokens", &PyList_Type, &token_lists, &prefix, &mark))
        return NULL;
    if (mark != Py_None && !PyUnicode_Check(mark)) {
        PyErr_SetString(PyExc_TypeError, "join_tokens: mark must be str or None");
        return NULL;
    }
    Py_ssize_t rows = PyList_GET_SIZE(token_lists), plen = PyUnicode_GET_LENGTH(prefix);
    PyObject *out = PyList_New(rows), *empty = PyUnicode_New(0, 0);
    if (out == NULL || empty == NULL)
        goto fail;
    for (Py_ssize_t r = 0; r < rows; r++) {
        PyObject *tokens = PyList_GET_ITEM(token_lists, r);
        if (!PyList_Check(tokens)) {
            PyErr_SetString(PyExc_TypeError, "join_tokens: expected lists of str");
            goto fail;
        }
        Py_ssize_t count = PyList_GET_SIZE(tokens);
        PyObject *parts = PyList_New(count);
        if (parts == NULL)
            goto fail;
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *tok = PyList_GET_ITEM(tokens, i), *part;
            if (!PyUnicode_Check(tok)) {
                Py_DECREF(parts);
                PyErr_SetString(PyExc_TypeError, "join_tokens: expected lists of str");
                goto fail;
            }
            Py_ssize_t tail = PyUnicode_Tailmatch(tok, prefix, 0, plen, -1);
            if (tail == 1)
                part = mark != Py_None ? Py_NewRef(mark) : PyUnicode_Substring(tok, plen, PyUnicode_GET_LENGTH(tok));
            else
                part = Py_NewRef(tok);
            if (part == NULL || tail == -1) {
                Py_XDECREF(part);
                Py_DECREF(parts);
                goto fail;
            }
            PyList_SET_ITEM(parts, i, part);
        }
        PyObject *joined = PyUnicode_Join(empty, parts);
        Py_DECREF(parts);
        if (joined == NULL)
            goto fail;
        PyList_SET_ITEM(out, r, joined);
    }
    Py_DECREF(empty);
    return out;
fail:
    Py_XDECREF(out);
    Py_XDECREF(empty);
    return NULL;
}

PyDoc_STRVAR(fold_punct_doc,
"fold_punct(text) -> str\n\n"
"text.translate(text._COMPAT_PUNCT): full-width ASCII forms (U+FF01-FF5E) to ASCII, the ideographic\n"
"space to a space and U+2026 to \"...\", each its NFKC decomposition. str.translate with a dict\n"
"looks every character up in the dict, which costs more than the rest of normalising.");

static inline Py_UCS4
folded(Py_UCS4 c)
{
    if (c >= 0xff01 && c <= 0xff5e)
        return c - 0xfee0;
    if (c == 0x3000)
        return ' ';
    return c;
}

static PyObject *
fold_punct(PyObject *self, PyObject *args)
{
    PyObject *text;
    if (!PyArg_ParseTuple(args, "U:fold_punct", &text))
        return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), length = 0, changed = 0;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_UCS4 maxchar = 0;
    for (Py_ssize_t i = 0; i < n; i++) {  /* first pass: the output's length and widest character */
        Py_UCS4 c = PyUnicode_READ(kind, data, i), f = folded(c);
        if (c == 0x2026) {
            length += 3;
            changed = 1;
            f = '.';
        } else {
            length += 1;
            changed |= f != c;
        }
        if (f > maxchar)
            maxchar = f;
    }
    if (!changed)
        return Py_NewRef(text);
    PyObject *out = PyUnicode_New(length, maxchar);  /* exact maxchar: the canonical form of the string */
    if (out == NULL)
        return NULL;
    int out_kind = PyUnicode_KIND(out);
    void *out_data = PyUnicode_DATA(out);
    Py_ssize_t j = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == 0x2026) {
            for (int k = 0; k < 3; k++)
                PyUnicode_WRITE(out_kind, out_data, j++, '.');
        } else {
            PyUnicode_WRITE(out_kind, out_data, j++, folded(c));
        }
    }
    return out;
}

PyDoc_STRVAR(top_features_doc,
"top_features(blocks, push, shown, best, k) -> list[(list[int], list[float])]\n\n"
"Classifier._top_features: per row, the (at most k) feature columns that pushed hardest toward\n"
"the row's predicted label ``best[row]``, strongest first, with their weights. ``blocks`` is a\n"
"list of (indptr, indices, data, first column) of the CSR blocks (int64, int64, float64),\n"
"``push`` the (labels x columns) float64 weights, ``shown`` one byte per column (nonzero: may be\n"
"shown). Ties keep the blocks' order, as the stable sort of the Python does.");

typedef struct {
    double key, weight;
    int64_t column;
} Ranked;

static PyObject *
top_features(PyObject *self, PyObject *args)
{
    PyObject *blocks, *result = NULL;
    Py_buffer push, shown, best;
    Py_ssize_t k;
    if (!PyArg_ParseTuple(args, "O!y*y*y*n:top_features", &PyList_Type, &blocks, &push, &shown, &best, &k))
        return NULL;
    Py_ssize_t n_blocks = PyList_GET_SIZE(blocks), rows = best.len / (Py_ssize_t)sizeof(int64_t);
    Py_ssize_t n_columns = shown.len, n_labels = n_columns ? push.len / (Py_ssize_t)sizeof(double) / n_columns : 0;
    Py_buffer *views = PyMem_Calloc(n_blocks * 3 + 1, sizeof(Py_buffer));
    int64_t *offsets = PyMem_Calloc(n_blocks + 1, sizeof(int64_t));
    Ranked *top = PyMem_Malloc(sizeof(Ranked) * (k > 0 ? k : 1));
    Py_ssize_t n_views = 0;
    if (views == NULL || offsets == NULL || top == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t b = 0; b < n_blocks; b++) {
        PyObject *block = PyList_GET_ITEM(blocks, b);
        if (!PyTuple_Check(block)) {
            PyErr_SetString(PyExc_TypeError, "top_features: blocks must be tuples");
            goto done;
        }
        if (!PyArg_ParseTuple(block, "y*y*y*L:top_features block", &views[3 * b], &views[3 * b + 1],
                              &views[3 * b + 2], &offsets[b]))
            goto done;
        n_views = 3 * b + 3;
        if (views[3 * b].len != (rows + 1) * (Py_ssize_t)sizeof(int64_t)
                || views[3 * b + 1].len / (Py_ssize_t)sizeof(int64_t) != views[3 * b + 2].len / (Py_ssize_t)sizeof(double)) {
            PyErr_SetString(PyExc_ValueError, "top_features: a block's arrays do not fit the rows");
            goto done;
        }
    }
    const double *push_w = push.buf;
    const unsigned char *is_shown = shown.buf;
    const int64_t *best_label = best.buf;
    if ((result = PyList_New(rows)) == NULL)
        goto done;
    for (Py_ssize_t r = 0; r < rows; r++) {
        Py_ssize_t n_top = 0;
        int64_t label = best_label[r];
        if (label < 0 || label >= n_labels) {
            PyErr_SetString(PyExc_IndexError, "top_features: label index out of range");
            Py_CLEAR(result);
            goto done;
        }
        const double *row_push = push_w + label * n_columns;
        for (Py_ssize_t b = 0; k > 0 && b < n_blocks; b++) {
            const int64_t *indptr = views[3 * b].buf, *indices = views[3 * b + 1].buf;
            const double *data = views[3 * b + 2].buf;
            for (int64_t j = indptr[r]; j < indptr[r + 1]; j++) {
                int64_t column = indices[j] + offsets[b];
                if (column < 0 || column >= n_columns) {
                    PyErr_SetString(PyExc_IndexError, "top_features: column out of range");
                    Py_CLEAR(result);
                    goto done;
                }
                double weight = data[j] * row_push[column];
                if (!(weight > 0) || !is_shown[column])
                    continue;
                /* the Python's sort key, computed the same way, so ties fall the same way */
                double key = (double)r - weight / (1 + weight);
                if (n_top == k && !(key < top[k - 1].key))
                    continue;
                Py_ssize_t at = n_top < k ? n_top : k - 1;
                while (at > 0 && key < top[at - 1].key) {  /* after any equal key: stable */
                    top[at] = top[at - 1];
                    at--;
                }
                top[at] = (Ranked){key, weight, column};
                if (n_top < k)
                    n_top++;
            }
        }
        PyObject *columns = PyList_New(n_top), *weights = PyList_New(n_top), *pair = NULL;
        if (columns != NULL && weights != NULL) {
            for (Py_ssize_t i = 0; i < n_top; i++) {
                PyObject *c = PyLong_FromLongLong(top[i].column), *w = PyFloat_FromDouble(top[i].weight);
                if (c == NULL || w == NULL) {
                    Py_XDECREF(c);
                    Py_XDECREF(w);
                    goto row_failed;
                }
                PyList_SET_ITEM(columns, i, c);
                PyList_SET_ITEM(weights, i, w);
            }
            pair = PyTuple_Pack(2, columns, weights);
        }
    row_failed:
        Py_XDECREF(columns);
        Py_XDECREF(weights);
        if (pair == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, r, pair);
    }
done:
    for (Py_ssize_t i = 0; i < n_views; i++)
        PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    PyMem_Free(offsets);
    PyMem_Free(top);
    PyBuffer_Release(&push);
    PyBuffer_Release(&shown);
    PyBuffer_Release(&best);
    return result;
}

static PyMethodDef methods[] = {
    {"mark_negation", mark_negation, METH_VARARGS, mark_negation_doc},
    {"evidence_spans", evidence_spans, METH_VARARGS, evidence_spans_doc},
    {"ngram_table", ngram_table, METH_VARARGS, ngram_table_doc},
    {"word_table", word_table, METH_VARARGS, word_table_doc},
    {"word_ngram_counts", word_ngram_counts, METH_VARARGS, word_ngram_counts_doc},
    {"char_ngram_counts", char_ngram_counts, METH_VARARGS, char_ngram_counts_doc},
    {"join_tokens", join_tokens, METH_VARARGS, join_tokens_doc},
    {"top_features", top_features, METH_VARARGS, top_features_doc},
    {"fold_punct", fold_punct, METH_VARARGS, fold_punct_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "C versions of the per-ticket hot loops (see ticket_nlp.speedups).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    for (int k = 0; k < N_NEGATOR_WORDS; k++)
        if ((negator_strings[k] = PyUnicode_FromString(NEGATOR_WORDS[k])) == NULL)
            return NULL;
    return PyModule_Create(&module);
}
