/* cli.h - what the command-line tool's files share. */
#ifndef NNLIB_CLI_H
#define NNLIB_CLI_H

#include <nnlib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Fashion-MNIST's class names, index = label. */
extern const char *const cli_class_names[10];

/* ---- arguments: --name value pairs and positional words ---- */
/* The first error in a command line (a value missing, an option given
 * twice, a bad number) is printed as its only line; `failed` then stays
 * set, every getter returns its fallback (false for the bool ones) without
 * printing, and cli_all_used returns false. */
typedef struct cli_args {
  int count;
  char **argv;
  bool *used;
  bool failed;
} cli_args;

/* False (after one line) when out of memory. */
bool cli_args_init(cli_args *a, int argc, char **argv);
void cli_args_free(cli_args *a);
/* False once an error was printed. */
bool cli_ok(const cli_args *a);
/* --name alone; "help" is -h too, and may repeat. */
bool cli_has_flag(cli_args *a, const char *name);
/* --name's value, or fallback when --name is absent. An error: --name last,
 * or followed by another option ("--..."), or given twice. */
const char *cli_get(cli_args *a, const char *name, const char *fallback);
/* The same, taking whatever argument follows, "--..." too (a text). */
const char *cli_get_text(cli_args *a, const char *name, const char *fallback);
/* The next unused --name's value, for an option that may repeat (NULL when
 * none is left). */
const char *cli_get_next(cli_args *a, const char *name);
/* Parses --name as a number in [min, max]; false (after printing one line)
 * when it is not. */
bool cli_get_i64(cli_args *a, const char *name, int64_t fallback, int64_t min,
                 int64_t max, int64_t *out);
/* A finite number >= 0, or > 0 when `positive`. */
bool cli_get_float(cli_args *a, const char *name, float fallback, bool positive,
                   float *out);
/* The next unused positional word, or NULL. */
const char *cli_positional(cli_args *a);
/* Prints one line about the first unknown or unused argument; false if any
 * (or if an error was printed before). */
bool cli_all_used(cli_args *a, const char *command);

/* ---- errors ---- */
/* Prints "nnlib <command>: <what>: <status text>: <detail>" and returns 1. */
int cli_fail(const char *command, const char *what, nnlib_status st);
/* Flushes stdout: false, after one line saying why ("nnlib: writing to
 * stdout: ..."), when anything written to it was lost. Said once: later
 * calls return false without a line. main() calls it after every command. */
bool cli_stdout_ok(void);

/* ---- progress (a bar on a terminal, nothing otherwise) ---- */
typedef struct cli_progress {
  bool tty;
  double start;      /* seconds, monotonic */
  int64_t epoch, epochs;
  double last_draw;
} cli_progress;
double cli_now(void);
int cli_progress_callback(const nnlib_progress *p, void *user);
void cli_progress_clear(cli_progress *p);
/* The bar of a run counted in steps (nnlib train --text); `loss` is the
 * mean training loss since the last printed line. */
void cli_progress_steps(cli_progress *bar, int64_t step, int64_t steps,
                        double loss);

/* ---- data and models ---- */
nnlib_status cli_load_split(const char *dir, nnlib_split split, int64_t limit,
                            nnlib_tensor **x, nnlib_tensor **y);

/* ---- model files: nnlib's own, or ONNX imported on load (model_file.c) ---- */
/* The compiled maximum batch of an imported ONNX model (nnlib convert
 * --max-batch changes it). */
#define CLI_ONNX_MAX_BATCH 64
/* True when path ends in ext (".onnx"), in any case. */
bool cli_has_extension(const char *path, const char *ext);
/* What the import flags ask: --onnx-output NAME, the graph output to
 * compute (NULL: the only one), and --onnx-whole-sample (each graph input
 * one whole sample, nnlib_onnx_options.whole_sample). */
typedef struct cli_onnx_flags {
  const char *output;
  bool whole_sample;
} cli_onnx_flags;
/* Reads the import flags from a. */
cli_onnx_flags cli_get_onnx_flags(cli_args *a);
/* Imports an ONNX model from `size` bytes at data, or from the file at path
 * when data is NULL, compiled for max_batch samples with `loss` and the
 * import flags (NULL: none). */
nnlib_status cli_import_onnx(nnlib_model **out, const void *data, size_t size,
                             const char *path, int64_t max_batch,
                             nnlib_loss loss, const cli_onnx_flags *flags);
/* A FILE.onnx imported (with onnx_loss and the import flags), anything else
 * read as a .nnl. */
nnlib_status cli_load_model(nnlib_model **out, const char *path,
                            nnlib_loss onnx_loss,
                            const cli_onnx_flags *flags);
/* The import flags are for imports: false (after one line on stderr) when
 * one is given and `file` is not an .onnx. */
bool cli_onnx_flags_fit(const char *command, const char *file,
                        const cli_onnx_flags *flags);
/* The model as ONNX at path (nnlib_model_save_onnx: written whole or not
 * at all, a failed export leaves the file that was there). 0, or 1 after
 * one line. */
int cli_save_onnx(const char *command, const nnlib_model *m, const char *path);
/* Before a long run: a model can be saved at path (a temporary file can be
 * made beside it, and path is no directory or device); false after one
 * line naming --out. */
bool cli_can_save(const char *command, const char *path);
/* The name of the layer that makes the model's output ("softmax", ...). */
const char *cli_output_layer_name(nnlib_model *m);

/* ---- the BLAS underneath (blas_check.c) ---- */
/* The name of OpenBLAS's kernel set ("Haswell"); static storage. */
const char *cli_blas_kernels(void);
/* OpenBLAS's build line, its kernels and the CPU's vector set, two lines. */
void cli_print_blas(FILE *out);
/* A warning on stderr when OpenBLAS's kernels are a fallback narrower than
 * the CPU (nnlib_blas_info.kernels_are_fallback); nothing otherwise. */
void cli_warn_slow_blas(void);

int cmd_train(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_generate(int argc, char **argv);
/* nnlib train --text: a byte-level language model (train_text.c). */
bool cli_wants_text(int argc, char **argv);
int cmd_train_text(int argc, char **argv);
void cli_train_text_usage(void);

#endif
