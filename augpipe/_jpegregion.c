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
 * Restart markers (``restart``): a baseline JPEG whose restart interval k divides its MCU row
 * (what ``augpipe pack --restart-rows`` writes: k from augpipe/format/restart.py, ~4 MCUs; older
 * packs have k = one whole MCU row) has mcux / k entropy-coded segments per MCU row, each
 * decodable on its own (DC predictions restart, the segment starts on a byte). One scan of the
 * entropy data for the RST markers finds them; a shorter JPEG is then assembled from only the
 * segments of the MCU rows and segment columns the region needs (the same tables and DRI, the
 * frame's height and width those of the sub-image, the segments concatenated, the markers
 * renumbered from 0, EOI appended) and decoded instead, the offsets shifted by the rows and
 * columns left out: the rows above, below and the columns beside the region are not even
 * entropy-decoded. A sub-image's edges differ from a whole decode under fancy upsampling (the
 * chroma upsampler sees them as the image's edges), so the cut keeps one full-size row above and
 * one scaled row below the region: its rows are the whole decode's, and its columns are too
 * except the band's first and last (as for any column crop: decode.py decodes one more on each
 * side and never samples them). Any other JPEG (no restart interval, one that does not divide
 * the MCU row, markers out of sequence, progressive, several scans) decodes as before.
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

#include "_jpegerr.h"

struct job {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_err err;
    const unsigned char *src;
    unsigned long src_len;
    int denom, fast, fancy, restart;
    JDIMENSION y0, y1, x0, x1;
    unsigned char *dst;
    unsigned char *sub; /* the JPEG of only the segments the region needs, or NULL */
    JDIMENSION row0;    /* scaled rows cut off above by ``sub`` */
    JDIMENSION col0;    /* scaled columns cut off on the left by ``sub`` */
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

/* Build j->sub when the JPEG's restart interval k divides its MCU row (k == mcux: one interval
 * per row) and the region leaves out MCU rows above or segment columns beside it; otherwise
 * leave it NULL (decode the JPEG as it is). Never fails: anything unexpected (a marker missing
 * or out of sequence, truncated data, no memory) just keeps the whole JPEG, whose decode then
 * reports the damage if the region needs it. */
static void cut_segments(struct job *j)
{
    const unsigned char *s = j->src, *end = j->src + j->src_len, *p = s + 2;
    const unsigned char *sof = NULL, *sos_end = NULL;
    unsigned restart = 0, ncomp = 0, hmax = 1, vmax = 1, width = 0, height = 0;
    const unsigned d = (unsigned)j->denom;
    if (!j->restart || j->src_len < 4 || s[0] != 0xFF || s[1] != 0xD8)
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
    if (ncomp == 1) /* a single-component scan's MCU is one 8 x 8 block */
        hmax = vmax = 1;
    unsigned mcu_w = 8 * hmax, mcu_h = 8 * vmax;
    unsigned mcux = (width + mcu_w - 1) / mcu_w, mcuy = (height + mcu_h - 1) / mcu_h;
    if (restart == 0 || mcux % restart != 0)
        return;
    unsigned k = restart, spr = mcux / k, seg_w = k * mcu_w; /* segments per MCU row, width */
    /* the MCU rows [r0, r1) and segment columns [s0, s1) that hold full-size rows
     * [y0 d - 1, (y1 + 1) d) and columns [x0 d, x1 d): one row above and one scaled row below
     * the region too, so that the chroma upsampler's context (fast=False) is the whole
     * image's; the band's edge columns may differ anyway (decode.py: never sampled) */
    unsigned long ylo = j->y0 * (unsigned long)d, yhi = (j->y1 + 1UL) * d;
    unsigned long xlo = j->x0 * (unsigned long)d, xhi = j->x1 * (unsigned long)d;
    unsigned r0 = ylo > 0 ? (unsigned)((ylo - 1) / mcu_h) : 0;
    unsigned long r1l = (yhi + mcu_h - 1) / mcu_h, s1l = (xhi + seg_w - 1) / seg_w;
    unsigned r1 = r1l < mcuy ? (unsigned)r1l : mcuy, s1 = s1l < spr ? (unsigned)s1l : spr;
    unsigned s0 = (unsigned)(xlo / seg_w);
    /* libjpeg upsamples a component at most 2 samples wide without its fancy filter: keep the
     * sub-image at least 2 hmax + 1 scaled pixels wide (> 2 chroma samples) where it can be */
    while (s0 < s1 && (s1 - s0 < spr) &&
           ((s1 == spr ? width : s1 * seg_w) - s0 * seg_w + d - 1) / d < 2 * hmax + 1) {
        if (s1 < spr)
            s1++;
        else
            s0--;
    }
    if (r0 >= r1 || s0 >= s1 || (r0 == 0 && s0 == 0 && s1 == spr))
        return; /* an empty region (start reports it), or nothing to leave out */
    /* where segments 0 .. last start and end: one scan for the restart markers */
    unsigned long last = (unsigned long)(r1 - 1) * spr + s1 - 1, total = (unsigned long)mcuy * spr;
    const unsigned char **at = malloc((last + 2) * sizeof *at);
    if (at == NULL)
        return;
    const unsigned char *q = sos_end;
    at[0] = sos_end; /* at[n]: start of segment n; at[n + 1] - 2: the marker ending it */
    for (unsigned long n = 0; n <= last; n++) {
        q = next_marker(q, end);
        if (q == NULL || q[1] != (n + 1 == total ? 0xD9 : 0xD0 + (n & 7))) {
            free(at); /* not the sequence a k-MCU interval gives: decode the JPEG as it is */
            return;
        }
        q += 2;
        at[n + 1] = q;
    }
    size_t head = (size_t)(sos_end - s), body = 0;
    unsigned long count = (unsigned long)(r1 - r0) * (s1 - s0);
    for (unsigned r = r0; r < r1; r++)
        body += (size_t)(at[(unsigned long)r * spr + s1] - at[(unsigned long)r * spr + s0]);
    unsigned char *sub = malloc(head + body + 2);
    if (sub == NULL) {
        free(at);
        return;
    }
    memcpy(sub, s, head);
    unsigned char *w = sub + head;
    unsigned long n = 0; /* segments written: the next marker is RSTn (mod 8) */
    for (unsigned r = r0; r < r1; r++) {
        for (unsigned c = s0; c < s1; c++, n++) {
            unsigned long i = (unsigned long)r * spr + c;
            size_t len = (size_t)(at[i + 1] - 2 - at[i]);
            memcpy(w, at[i], len);
            w += len;
            w[0] = 0xFF;
            w[1] = (unsigned char)(n + 1 == count ? 0xD9 : 0xD0 + (n & 7));
            w += 2;
        }
    }
    free(at);
    unsigned h2 = (r1 == mcuy ? height : r1 * mcu_h) - r0 * mcu_h;
    unsigned w2 = (s1 == spr ? width : s1 * seg_w) - s0 * seg_w;
    unsigned char *f = sub + (sof - s);
    f[5] = (unsigned char)(h2 >> 8);
    f[6] = (unsigned char)(h2 & 255);
    f[7] = (unsigned char)(w2 >> 8);
    f[8] = (unsigned char)(w2 & 255);
    j->sub = sub;
    j->src = sub;
    j->src_len = (unsigned long)(w - sub);
    j->row0 = r0 * mcu_h / d;
    j->col0 = s0 * seg_w / d;
    j->y0 -= j->row0;
    j->y1 -= j->row0;
    j->x0 -= j->col0;
    j->x1 -= j->col0;
}

/* Phase 1, without the GIL: header, scaling, start, column crop. 0 or -1 (message in err). */
static int start(struct job *j)
{
    struct jpeg_decompress_struct *c = &j->cinfo;
    cut_segments(j);
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
    j->cinfo.err = jpeg_err_init(&j->err);
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
    result = Py_BuildValue("(Onnnn)", data, (Py_ssize_t)(j->y0 + j->row0),
                           (Py_ssize_t)(j->x0 + j->col0),
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
     "JPEG scaled by 1/denom, columns widened to iMCU boundaries, only the restart segments the region "
     "needs entropy-decoded when the interval divides the MCU row; ValueError on a bad JPEG."},
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
