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

/* " ".join(tokens[start:start + n]) */
static PyObject *
join_ngram(PyObject *tokens, Py_ssize_t start, Py_ssize_t n)
{
    Py_ssize_t length = n - 1;
    Py_UCS4 maxchar = ' ';
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *t = PyList_GET_ITEM(tokens, start + k);
        length += PyUnicode_GET_LENGTH(t);
        Py_UCS4 m = PyUnicode_MAX_CHAR_VALUE(t);
        if (m > maxchar)
            maxchar = m;
    }
    PyObject *gram = PyUnicode_New(length, maxchar);
    if (gram == NULL)
        return NULL;
    Py_ssize_t at = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *t = PyList_GET_ITEM(tokens, start + k);
        if (k) {
            PyUnicode_WRITE(PyUnicode_KIND(gram), PyUnicode_DATA(gram), at, ' ');
            at++;
        }
        if (PyUnicode_CopyCharacters(gram, at, t, 0, PyUnicode_GET_LENGTH(t)) < 0) {
            Py_DECREF(gram);
            return NULL;
        }
        at += PyUnicode_GET_LENGTH(t);
    }
    return gram;
}

PyDoc_STRVAR(ngram_columns_doc,
"ngram_columns(tokens, vocabulary, min_n, max_n, out) -> None\n\n"
"inference.word_ngrams + vocabulary lookup: append to ``out`` the vocabulary column of every\n"
"word n-gram (n in [min_n, max_n], tokens joined by a space) that is in ``vocabulary``, in\n"
"scikit-learn's order (all unigrams, then all bigrams, ...).");

static PyObject *
ngram_columns(PyObject *self, PyObject *args)
{
    PyObject *tokens, *vocabulary, *out;
    Py_ssize_t min_n, max_n;
    if (!PyArg_ParseTuple(args, "O!O!nnO!:ngram_columns", &PyList_Type, &tokens, &PyDict_Type, &vocabulary,
                          &min_n, &max_n, &PyList_Type, &out))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(tokens);
    for (Py_ssize_t i = 0; i < count; i++)
        if (!PyUnicode_Check(PyList_GET_ITEM(tokens, i))) {
            PyErr_SetString(PyExc_TypeError, "ngram_columns: tokens must be str");
            return NULL;
        }
    for (Py_ssize_t n = min_n < 1 ? 1 : min_n; n <= max_n; n++) {
        for (Py_ssize_t i = 0; i + n <= count; i++) {
            PyObject *gram = n == 1 ? Py_NewRef(PyList_GET_ITEM(tokens, i)) : join_ngram(tokens, i, n);
            if (gram == NULL)
                return NULL;
            PyObject *column = PyDict_GetItemWithError(vocabulary, gram); /* borrowed */
            Py_DECREF(gram);
            if (column == NULL) {
                if (PyErr_Occurred())
                    return NULL;
                continue;
            }
            if (PyList_Append(out, column) < 0)
                return NULL;
        }
    }
    Py_RETURN_NONE;
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

/* --- character n-grams --------------------------------------------------------------------- */
/* features.CharNgramTfidf keeps its vocabulary as the sorted array of n-gram hashes; binary search
 * in it costs a cache miss per probe. Here the same hashes go into an open-addressing table
 * (linear probing, at most 2/3 full) that answers in about one. */
typedef struct {
    uint64_t key;
    int64_t column; /* -1: empty slot */
} Slot;

static inline uint64_t
slot_of(uint64_t key, uint64_t mask)
{
    return (key * 0x9E3779B97F4A7C15ULL >> 17) & mask;
}

PyDoc_STRVAR(ngram_table_doc,
"ngram_table(hashes) -> bytes\n\n"
"The lookup table of a CharNgramTfidf vocabulary (``hashes_``, uint64): column i holds hashes[i].");

static PyObject *
ngram_table(PyObject *self, PyObject *args)
{
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*:ngram_table", &view))
        return NULL;
    Py_ssize_t n = view.len / (Py_ssize_t)sizeof(uint64_t);
    const uint64_t *hashes = view.buf;
    uint64_t capacity = 16;
    while (capacity < (uint64_t)n + (uint64_t)n / 2 + 1)
        capacity <<= 1;
    PyObject *table = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(capacity * sizeof(Slot)));
    if (table == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    Slot *slots = (Slot *)PyBytes_AS_STRING(table);
    for (uint64_t i = 0; i < capacity; i++)
        slots[i] = (Slot){0, -1};
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t at = slot_of(hashes[i], capacity - 1);
        while (slots[at].column != -1 && slots[at].key != hashes[i])
            at = (at + 1) & (capacity - 1);
        if (slots[at].column == -1)
            slots[at] = (Slot){hashes[i], i};
    }
    PyBuffer_Release(&view);
    return table;
}

static int
compare_columns(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

PyDoc_STRVAR(char_ngram_counts_doc,
"char_ngram_counts(texts, min_n, max_n, table) -> (indptr, indices, counts)\n\n"
"features._hashed_ngrams + CharNgramTfidf._counts: per text (NUL characters removed), the\n"
"vocabulary columns of its character n-grams with their counts, as the raw int64 / int64 /\n"
"float64 arrays of a CSR matrix with sorted column indices.");

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
    Py_ssize_t n_texts = PyList_GET_SIZE(texts), total = 0, longest = 0;
    if (min_n < 1)
        min_n = 1;
    for (Py_ssize_t t = 0; t < n_texts; t++) {
        PyObject *text = PyList_GET_ITEM(texts, t);
        if (!PyUnicode_Check(text)) {
            PyBuffer_Release(&view);
            PyErr_SetString(PyExc_TypeError, "char_ngram_counts: texts must be str");
            return NULL;
        }
        Py_ssize_t length = PyUnicode_GET_LENGTH(text);
        total += length * (max_n - min_n + 1);
        if (length > longest)
            longest = length;
    }
    int64_t *indptr = PyMem_Malloc(sizeof(int64_t) * (n_texts + 1));
    int64_t *indices = PyMem_Malloc(sizeof(int64_t) * (total + 1));
    double *counts = PyMem_Malloc(sizeof(double) * (total + 1));
    uint64_t *codes = PyMem_Malloc(sizeof(uint64_t) * (longest + 1));
    int64_t *found = PyMem_Malloc(sizeof(int64_t) * (longest * (max_n - min_n + 1) + 1));
    PyObject *result = NULL;
    if (!indptr || !indices || !counts || !codes || !found) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t nnz = 0;
    indptr[0] = 0;
    for (Py_ssize_t t = 0; t < n_texts; t++) {
        PyObject *text = PyList_GET_ITEM(texts, t);
        int kind = PyUnicode_KIND(text);
        const void *data = PyUnicode_DATA(text);
        Py_ssize_t length = 0, n_found = 0;
        for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(text); i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c != 0)
                codes[length++] = c;
        }
        for (Py_ssize_t n = min_n; n <= max_n; n++) {
            for (Py_ssize_t i = 0; i + n <= length; i++) {
                uint64_t h = (uint64_t)n; /* the same hash as _hashed_ngrams */
                for (Py_ssize_t k = 0; k < n; k++)
                    h = (h * 1000003ULL) ^ codes[i + k];
                uint64_t at = slot_of(h, mask);
                while (slots[at].column != -1 && slots[at].key != h)
                    at = (at + 1) & mask;
                if (slots[at].column != -1)
                    found[n_found++] = slots[at].column;
            }
        }
        qsort(found, (size_t)n_found, sizeof(int64_t), compare_columns);
        for (Py_ssize_t i = 0; i < n_found; i++) {
            if (i && found[i] == found[i - 1]) {
                counts[nnz - 1] += 1.0;
            }
            else {
                indices[nnz] = found[i];
                counts[nnz++] = 1.0;
            }
        }
        indptr[t + 1] = nnz;
    }
    result = Py_BuildValue("(y#y#y#)", (const char *)indptr, (Py_ssize_t)(sizeof(int64_t) * (n_texts + 1)),
                           (const char *)indices, (Py_ssize_t)(sizeof(int64_t) * nnz), (const char *)counts,
                           (Py_ssize_t)(sizeof(double) * nnz));
done:
    PyMem_Free(indptr);
    PyMem_Free(indices);
    PyMem_Free(counts);
    PyMem_Free(codes);
    PyMem_Free(found);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"mark_negation", mark_negation, METH_VARARGS, mark_negation_doc},
    {"ngram_columns", ngram_columns, METH_VARARGS, ngram_columns_doc},
    {"evidence_spans", evidence_spans, METH_VARARGS, evidence_spans_doc},
    {"ngram_table", ngram_table, METH_VARARGS, ngram_table_doc},
    {"char_ngram_counts", char_ngram_counts, METH_VARARGS, char_ngram_counts_doc},
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
