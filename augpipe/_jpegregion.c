/* Region JPEG decoding with libjpeg-turbo: decode only the rows and columns a crop needs.
 *
 * decode_region(buf, y0, y1, x0, x1, denom=1, out=None, fast=False, fancy=True, restart=True)
 *     -> (data, y0, x0, h, w)
 *
 * Decodes rows [y0, y1) and columns [x0, x1) of the image scaled by 1/denom (denom in 1, 2, 4,
 * 8; the scaled image is ceil(H/denom) x ceil(W/denom), libjpeg's rounding) to RGB. The bounds
 * are clamped to the scaled image; the columns are widened to iMCU boundaries by
 * jpeg_crop_scanline, so the returned (y0, x0, h, w) give the rectangle actually decoded:
 * ``data`` holds h rows of w RGB pixels, row-major, contiguous. Rows above y0 are entropy-decoded
 * only (jpeg_skip_scanlines); rows below y1 are not read at all (jpeg_abort_decompress).
 *
 * ``out``: an optional writable, C-contiguous buffer of at least h*w*3 bytes (a buffer of
 * ceil(H/denom) * ceil(W/denom) * 3 bytes is always enough) that receives the pixels and is
 * returned as ``data``; otherwise a new bytearray is returned. ``fast`` selects JDCT_IFAST
 * instead of JDCT_ISLOW; ``fancy`` False uses libjpeg's cheaper chroma upsampling.
 *
 * Restart markers (``restart``): a baseline JPEG whose restart interval is one MCU row (what
 * ``augpipe pack --restart-rows`` writes) has an entropy-coded segment per MCU row, each
 * decodable on its own (DC predictions restart, the segment starts on a byte). For a region
 * that starts below the top, the rows above are then not even entropy-decoded: a shorter JPEG is
 * assembled (the same tables, the frame height reduced, the segments from the MCU row above the
 * region's first row on, restart markers renumbered from 0) and decoded instead. Its first row
 * differs from a whole decode (the chroma upsampler sees it as the image's top edge), so the cut
 * is made at least one row above the region: the pixels returned are the same as without it.
 * Any other JPEG (no or another restart interval, progressive, several scans) decodes as before.
 *
 * Errors (corrupt or truncated data, libjpeg warnings included, CMYK input, a short ``out``)
 * raise ValueError; libjpeg never prints and never exits. The GIL is released while libjpeg
 * runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

struct region_err {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
};

static void on_error(j_common_ptr cinfo)
{
    struct region_err *e = (struct region_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void on_output(j_common_ptr cinfo)
{
    (void)cinfo; /* never print: messages reach Python through on_error */
}

static void on_emit(j_common_ptr cinfo, int level)
{
    /* level < 0: a warning about corrupt data (truncation included), which libjpeg would
     * otherwise paper over with grey pixels; a training set wants to know. */
    if (level < 0)
        on_error(cinfo);
}

struct job {
    struct jpeg_decompress_struct cinfo;
    struct region_err err;
    const unsigned char *src;
    unsigned long src_len;
    int denom, fast, fancy, restart;
    JDIMENSION y0, y1, x0, x1;
    unsigned char *dst;
    unsigned char *sub; /* the JPEG without the MCU rows above the region, or NULL */
    JDIMENSION row0;    /* scaled rows cut off above by ``sub`` */
};

static unsigned be16(const unsigned char *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

/* Where the next marker starts at or after p in entropy-coded data (0xFF not followed by 0x00
 * or a fill byte), or NULL. */
static const unsigned char *next_marker(const unsigned char *p, const unsigned char *end)
{
    while (p + 1 < end) {
        p = memchr(p, 0xFF, (size_t)(end - p - 1));
        if (p == NULL)
            return NULL;
        if (p[1] != 0x00 && p[1] != 0xFF)
            return p;
        p += p[1] == 0x00 ? 2 : 1;
    }
    return NULL;
}

/* Build j->sub when the JPEG has one restart interval per MCU row and the region starts at
 * least one MCU row (+ 1 row) down; otherwise leave it NULL (decode the JPEG as it is). Never
 * fails: anything unexpected just keeps the whole JPEG, whose decode then reports errors. */
static void cut_rows_above(struct job *j)
{
    const unsigned char *s = j->src, *end = j->src + j->src_len, *p = s + 2;
    const unsigned char *sof = NULL, *sos_end = NULL;
    unsigned restart = 0, ncomp = 0, hmax = 1, vmax = 1, width = 0, height = 0;
    if (!j->restart || j->y0 < 2 || j->src_len < 4 || s[0] != 0xFF || s[1] != 0xD8)
        return;
    while (p + 4 <= end && sos_end == NULL) { /* the marker segments up to the scan */
        if (p[0] != 0xFF)
            return;
        unsigned m = p[1], len = be16(p + 2);
        if (m == 0xFF) {
            p++;
            continue;
        }
        if (len < 2 || p + 2 + len > end)
            return;
        if (m == 0xC0 || m == 0xC1) { /* baseline / extended sequential, Huffman */
            if (len < 8)
                return;
            sof = p;
            height = be16(p + 5);
            width = be16(p + 7);
            ncomp = p[9];
            if (len < 8 + 3 * ncomp || ncomp == 0)
                return;
            for (unsigned c = 0; c < ncomp; c++) {
                unsigned hs = p[11 + 3 * c] >> 4, vs = p[11 + 3 * c] & 15;
                hmax = hs > hmax ? hs : hmax;
                vmax = vs > vmax ? vs : vmax;
            }
        } else if ((m >= 0xC2 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC)) {
            return; /* progressive, lossless, arithmetic coding: not cut */
        } else if (m == 0xDD && len == 4) {
            restart = be16(p + 4);
        } else if (m == 0xDA) {
            if (sof == NULL || p[4] != ncomp) /* one interleaved scan only */
                return;
            sos_end = p + 2 + len;
        }
        p += 2 + len;
    }
    if (sos_end == NULL || width == 0 || height == 0 || hmax > 4 || vmax > 4)
        return;
    unsigned mcu_h = 8 * vmax, mcux = (width + 8 * hmax - 1) / (8 * hmax);
    /* the row above the region's first row must be decoded too (chroma upsampling context) */
    unsigned r0 = (unsigned)((j->y0 * (JDIMENSION)j->denom - 1) / mcu_h);
    if (restart != mcux || r0 == 0 || r0 * mcu_h >= height)
        return;
    const unsigned char *q = sos_end; /* find the r0-th restart marker */
    for (unsigned k = 0; k < r0; k++) {
        q = next_marker(q, end);
        if (q == NULL || q[1] != 0xD0 + (k & 7))
            return;
        q += 2;
    }
    size_t head = (size_t)(sos_end - s), tail = (size_t)(end - q);
    unsigned char *sub = malloc(head + tail);
    if (sub == NULL)
        return;
    memcpy(sub, s, head);
    memcpy(sub + head, q, tail);
    unsigned h2 = height - r0 * mcu_h;
    sub[(sof - s) + 5] = (unsigned char)(h2 >> 8);
    sub[(sof - s) + 6] = (unsigned char)(h2 & 255);
    unsigned char *r = sub + head, *send = sub + head + tail;
    while ((r = (unsigned char *)next_marker(r, send)) != NULL) { /* renumber from RST0 */
        if (r[1] >= 0xD0 && r[1] <= 0xD7)
            r[1] = (unsigned char)(0xD0 + ((r[1] - 0xD0 + 8 - (r0 & 7)) & 7));
        r += 2;
    }
    j->sub = sub;
    j->src = sub;
    j->src_len = (unsigned long)(head + tail);
    j->row0 = r0 * mcu_h / (unsigned)j->denom;
    j->y0 -= j->row0;
    j->y1 -= j->row0;
}

/* Phase 1, without the GIL: header, scaling, start, column crop. 0 or -1 (message in err). */
static int start(struct job *j)
{
    struct jpeg_decompress_struct *c = &j->cinfo;
    cut_rows_above(j);
    if (setjmp(j->err.jump))
        return -1;
    jpeg_mem_src(c, j->src, j->src_len);
    jpeg_read_header(c, TRUE);
    c->out_color_space = JCS_RGB;
    c->scale_num = 1;
    c->scale_denom = (unsigned int)j->denom;
    c->dct_method = j->fast ? JDCT_IFAST : JDCT_ISLOW;
    c->do_fancy_upsampling = j->fancy ? TRUE : FALSE;
    jpeg_start_decompress(c);
    if (c->output_components != 3) {
        snprintf(j->err.msg, sizeof j->err.msg, "%d output components, expected 3",
                 c->output_components);
        return -1;
    }
    if (j->y1 > c->output_height)
        j->y1 = c->output_height;
    if (j->x1 > c->output_width)
        j->x1 = c->output_width;
    if (j->y0 >= j->y1 || j->x0 >= j->x1) {
        snprintf(j->err.msg, sizeof j->err.msg, "empty region for a %ux%u scaled image",
                 (unsigned)c->output_height, (unsigned)c->output_width);
        return -1;
    }
    if (j->x0 > 0 || j->x1 < c->output_width) {
        JDIMENSION xoff = j->x0, w = j->x1 - j->x0;
        jpeg_crop_scanline(c, &xoff, &w);
        j->x0 = xoff;
        j->x1 = xoff + w;
    }
    return 0;
}

/* Phase 2, without the GIL: skip to y0, read rows up to y1 into dst. 0 or -1. */
static int finish(struct job *j)
{
    struct jpeg_decompress_struct *c = &j->cinfo;
    if (setjmp(j->err.jump))
        return -1;
    size_t stride = (size_t)c->output_width * 3;
    JDIMENSION skipped = 0;
    if (j->y0 > 0)
        skipped = jpeg_skip_scanlines(c, j->y0);
    if (skipped != j->y0) {
        snprintf(j->err.msg, sizeof j->err.msg, "could skip only %u of %u rows",
                 (unsigned)skipped, (unsigned)j->y0);
        return -1;
    }
    JSAMPROW rows[16];
    while (c->output_scanline < j->y1) {
        JDIMENSION want = j->y1 - c->output_scanline, n = 0;
        if (want > 16)
            want = 16;
        for (JDIMENSION r = 0; r < want; r++)
            rows[r] = j->dst + (size_t)(c->output_scanline - j->y0 + r) * stride;
        n = jpeg_read_scanlines(c, rows, want);
        if (n == 0) {
            snprintf(j->err.msg, sizeof j->err.msg, "no rows decoded at row %u",
                     (unsigned)c->output_scanline);
            return -1;
        }
    }
    jpeg_abort_decompress(c); /* the rows below y1 are never read */
    return 0;
}

static PyObject *decode_region(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"buf",   "y0",  "y1",   "x0",    "x1",      "denom",
                            "out",   "fast", "fancy", "restart", NULL};
    Py_buffer src = {0}, dst = {0};
    Py_ssize_t y0, y1, x0, x1;
    int denom = 1, fast = 0, fancy = 1, restart = 1, rc;
    PyObject *out = Py_None, *data = NULL, *result = NULL;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*nnnn|iOppp", names, &src, &y0, &y1, &x0, &x1,
                                     &denom, &out, &fast, &fancy, &restart))
        return NULL;
    if (denom != 1 && denom != 2 && denom != 4 && denom != 8) {
        PyErr_Format(PyExc_ValueError, "denom: expected 1, 2, 4 or 8, got %d", denom);
        goto done;
    }
    struct job *j = PyMem_Calloc(1, sizeof *j);
    if (j == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    j->src = src.buf;
    j->src_len = (unsigned long)src.len;
    j->denom = denom;
    j->fast = fast;
    j->fancy = fancy;
    j->restart = restart;
    j->y0 = (JDIMENSION)(y0 < 0 ? 0 : y0 > 0xFFFFFF ? 0xFFFFFF : y0);
    j->y1 = (JDIMENSION)(y1 < 0 ? 0 : y1 > 0xFFFFFF ? 0xFFFFFF : y1);
    j->x0 = (JDIMENSION)(x0 < 0 ? 0 : x0 > 0xFFFFFF ? 0xFFFFFF : x0);
    j->x1 = (JDIMENSION)(x1 < 0 ? 0 : x1 > 0xFFFFFF ? 0xFFFFFF : x1);
    j->cinfo.err = jpeg_std_error(&j->err.pub);
    j->err.pub.error_exit = on_error;
    j->err.pub.output_message = on_output;
    j->err.pub.emit_message = on_emit;
    jpeg_create_decompress(&j->cinfo);

    Py_BEGIN_ALLOW_THREADS
    rc = start(j);
    Py_END_ALLOW_THREADS
    if (rc)
        goto fail;

    Py_ssize_t need = (Py_ssize_t)(j->y1 - j->y0) * (Py_ssize_t)(j->x1 - j->x0) * 3;
    if (out == Py_None) {
        data = PyByteArray_FromStringAndSize(NULL, need);
        if (data == NULL)
            goto cleanup;
        j->dst = (unsigned char *)PyByteArray_AS_STRING(data);
    } else {
        if (PyObject_GetBuffer(out, &dst, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
            goto cleanup;
        if (dst.len < need) {
            PyErr_Format(PyExc_ValueError, "out: expected at least %zd bytes, got %zd", need,
                         dst.len);
            goto cleanup;
        }
        j->dst = dst.buf;
        Py_INCREF(out);
        data = out;
    }

    Py_BEGIN_ALLOW_THREADS
    rc = finish(j);
    Py_END_ALLOW_THREADS
    if (rc)
        goto fail;
    result = Py_BuildValue("(Onnnn)", data, (Py_ssize_t)(j->y0 + j->row0), (Py_ssize_t)j->x0,
                           (Py_ssize_t)(j->y1 - j->y0), (Py_ssize_t)(j->x1 - j->x0));
    goto cleanup;
fail:
    PyErr_Format(PyExc_ValueError, "JPEG decode failed: %s",
                 j->err.msg[0] ? j->err.msg : "unknown libjpeg error");
cleanup:
    jpeg_destroy_decompress(&j->cinfo);
    free(j->sub);
    PyMem_Free(j);
done:
    Py_XDECREF(data);
    if (dst.obj != NULL)
        PyBuffer_Release(&dst);
    PyBuffer_Release(&src);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_region", (PyCFunction)(void (*)(void))decode_region, METH_VARARGS | METH_KEYWORDS,
     "decode_region(buf, y0, y1, x0, x1, denom=1, out=None, fast=False, fancy=True, "
     "restart=True) -> (data, y0, x0, h, w): RGB rows [y0, y1) and columns [x0, x1) of the "
     "JPEG scaled by 1/denom, columns widened to iMCU boundaries, rows above skipped by restart "
     "markers when each MCU row has one; ValueError on a bad JPEG."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_jpegregion",
    "Region JPEG decoding with libjpeg-turbo (see augpipe/decode.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__jpegregion(void)
{
    PyObject *m = PyModule_Create(&module);
#ifdef LIBJPEG_TURBO_VERSION_NUMBER
    if (m != NULL && PyModule_AddIntConstant(m, "LIBJPEG_TURBO", LIBJPEG_TURBO_VERSION_NUMBER) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#endif
    return m;
}
