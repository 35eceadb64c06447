/* The libjpeg error manager both C extensions use (_jpegregion, _jpegrestart): errors and
 * corrupt-data warnings jump back to the caller with libjpeg's message, nothing is printed.
 *
 *     struct jpeg_err err;
 *     cinfo.err = jpeg_err_init(&err);
 *     if (setjmp(err.jump)) { ... err.msg holds the reason ... }
 */
#ifndef AUGPIPE_JPEGERR_H
#define AUGPIPE_JPEGERR_H

#include <setjmp.h>
#include <stdio.h>

#include <jpeglib.h>

struct jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
};

static void on_error(j_common_ptr cinfo)
{
    struct jpeg_err *e = (struct jpeg_err *)cinfo->err;
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
     * otherwise paper over with grey pixels (or re-encode): a training set wants to know. */
    if (level < 0)
        on_error(cinfo);
}

/* libjpeg's standard manager with the three handlers above; returns &e->pub for cinfo.err. */
static struct jpeg_error_mgr *jpeg_err_init(struct jpeg_err *e)
{
    struct jpeg_error_mgr *pub = jpeg_std_error(&e->pub);
    pub->error_exit = on_error;
    pub->output_message = on_output;
    pub->emit_message = on_emit;
    return pub;
}

#endif
