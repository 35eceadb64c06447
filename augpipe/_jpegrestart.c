/* Lossless restart markers for an existing JPEG (libjpeg's transcoding API, as jpegtran).
 *
 * add_restarts(buf, interval_mcus) -> bytes
 *
 * Reads the JPEG's DCT coefficients (jpeg_read_coefficients), and writes them again
 * (jpeg_write_coefficients) with the same quantisation tables, sampling factors and component
 * ids (jpeg_copy_critical_parameters), a restart marker every ``interval_mcus`` MCUs and
 * Huffman tables optimised for this image. No coefficient changes, so every decoder gives the
 * same pixels as from the input. The output is always baseline sequential (one interleaved
 * scan): a progressive or arithmetic-coded input becomes baseline Huffman. No APPn or COM
 * marker is copied: libjpeg writes the JFIF (YCbCr) header itself.
 *
 * Only 8-bit, 3-component YCbCr JPEGs are accepted. Errors (corrupt or truncated data, any
 * libjpeg warning included, CMYK / greyscale / RGB / 12-bit input, an interval outside
 * 1..65535) raise ValueError with libjpeg's message; libjpeg never prints and never exits. The
 * GIL is released while libjpeg runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "_jpegerr.h"

/* A growable in-memory destination (malloc'd; the caller frees ``buf`` whatever happened,
 * unlike jpeg_mem_dest, whose buffer pointer is stale after an error mid-way). */
struct grow_dest {
    struct jpeg_destination_mgr pub;
    unsigned char *buf;
    size_t cap;
};

static void dest_init(j_compress_ptr cinfo)
{
    struct grow_dest *d = (struct grow_dest *)cinfo->dest;
    d->pub.next_output_byte = d->buf;
    d->pub.free_in_buffer = d->cap;
}

static boolean dest_empty(j_compress_ptr cinfo)
{
    struct grow_dest *d = (struct grow_dest *)cinfo->dest;
    size_t cap = d->cap * 2;
    unsigned char *p = realloc(d->buf, cap);
    if (p == NULL) {
        snprintf(((struct jpeg_err *)cinfo->err)->msg, JMSG_LENGTH_MAX, "out of memory");
        longjmp(((struct jpeg_err *)cinfo->err)->jump, 1);
    }
    d->pub.next_output_byte = p + d->cap; /* libjpeg's contract: the whole buffer was full */
    d->pub.free_in_buffer = cap - d->cap;
    d->buf = p;
    d->cap = cap;
    return TRUE;
}

static void dest_term(j_compress_ptr cinfo)
{
    (void)cinfo; /* the length is cap - free_in_buffer */
}

struct job {
    struct jpeg_decompress_struct src;
    struct jpeg_compress_struct dst;
    struct jpeg_err err;
    struct grow_dest dest;
    const unsigned char *in;
    unsigned long in_len;
    unsigned interval;
    size_t out_len;
};

static int transcode(struct job *j)
{
    if (setjmp(j->err.jump))
        return -1;
    jpeg_mem_src(&j->src, j->in, j->in_len);
    jpeg_read_header(&j->src, TRUE);
    if (j->src.data_precision != 8 || j->src.num_components != 3 ||
        j->src.jpeg_color_space != JCS_YCbCr) {
        snprintf(j->err.msg, sizeof j->err.msg,
                 "unsupported JPEG: %d-bit, %d components, colour space %d (expected 8-bit "
                 "YCbCr)",
                 j->src.data_precision, j->src.num_components, (int)j->src.jpeg_color_space);
        return -1;
    }
    jvirt_barray_ptr *coefs = jpeg_read_coefficients(&j->src);
    jpeg_copy_critical_parameters(&j->src, &j->dst);
    j->dst.restart_interval = j->interval;
    j->dst.restart_in_rows = 0;
    j->dst.optimize_coding = TRUE;
    j->dst.arith_code = FALSE;
    j->dest.cap = j->in_len + 4096;
    j->dest.buf = malloc(j->dest.cap);
    if (j->dest.buf == NULL) {
        snprintf(j->err.msg, sizeof j->err.msg, "out of memory");
        return -1;
    }
    j->dest.pub.init_destination = dest_init;
    j->dest.pub.empty_output_buffer = dest_empty;
    j->dest.pub.term_destination = dest_term;
    j->dst.dest = &j->dest.pub;
    jpeg_write_coefficients(&j->dst, coefs);
    jpeg_finish_compress(&j->dst);
    j->out_len = j->dest.cap - j->dest.pub.free_in_buffer;
    jpeg_finish_decompress(&j->src); /* reads to EOI: trailing damage warns here */
    return 0;
}

static PyObject *add_restarts(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"buf", "interval_mcus", NULL};
    Py_buffer in = {0};
    Py_ssize_t interval;
    PyObject *result = NULL;
    int rc;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*n", names, &in, &interval))
        return NULL;
    if (interval < 1 || interval > 0xFFFF) {
        PyErr_Format(PyExc_ValueError, "interval_mcus: expected 1..65535, got %zd", interval);
        goto done;
    }
    if (in.len < 4 || (unsigned long long)in.len > 0xFFFFFFFFull) {
        PyErr_Format(PyExc_ValueError, "not a JPEG: %zd bytes", in.len);
        goto done;
    }
    struct job *j = PyMem_Calloc(1, sizeof *j);
    if (j == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    j->in = in.buf;
    j->in_len = (unsigned long)in.len;
    j->interval = (unsigned)interval;
    j->src.err = jpeg_err_init(&j->err);
    j->dst.err = &j->err.pub;
    jpeg_create_decompress(&j->src);
    jpeg_create_compress(&j->dst);

    Py_BEGIN_ALLOW_THREADS
    rc = transcode(j);
    Py_END_ALLOW_THREADS
    if (rc)
        PyErr_Format(PyExc_ValueError, "JPEG transcode failed: %s",
                     j->err.msg[0] ? j->err.msg : "unknown libjpeg error");
    else
        result = PyBytes_FromStringAndSize((const char *)j->dest.buf, (Py_ssize_t)j->out_len);
    jpeg_destroy_compress(&j->dst);
    jpeg_destroy_decompress(&j->src);
    free(j->dest.buf);
    PyMem_Free(j);
done:
    PyBuffer_Release(&in);
    return result;
}

static PyMethodDef methods[] = {
    {"add_restarts", (PyCFunction)(void (*)(void))add_restarts, METH_VARARGS | METH_KEYWORDS,
     "add_restarts(buf, interval_mcus) -> bytes: the same JPEG (the same DCT coefficients, so "
     "the same pixels), baseline, optimised Huffman tables, a restart marker every "
     "interval_mcus MCUs; ValueError on a bad or unsupported JPEG."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_jpegrestart",
    "Lossless restart markers for JPEGs (see augpipe/format/restart.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__jpegrestart(void)
{
    return PyModule_Create(&module);
}
