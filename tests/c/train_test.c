/*
 * Fine-tuning through the C API, as an analyzer that links the library would run it:
 * a run that writes a checkpoint (each step printed as "step N TOTAL EPOCH LOSS LR
 * GRAD_NORM" for the Rust test to compare), a run with validation data, a run its
 * callback stops, and the errors of bad arguments, each checked for its status and the
 * name in its message.
 *
 *   train_test MODEL_DIR DATA RECIPE_JSON OUTPUT VALIDATED_OUTPUT STOPPED_OUTPUT
 *
 * DATA holds the examples one after another, each as "LABEL LENGTH\n" and LENGTH bytes
 * of code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "insecure_code_detector.h"

static int failures = 0;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                  \
            fputc('\n', stderr);                           \
            failures++;                                    \
        }                                                  \
    } while (0)

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *bytes = malloc((size_t)size + 1);
    if (!bytes || fread(bytes, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    bytes[size] = '\0';
    *len = (size_t)size;
    return bytes;
}

/* The examples of DATA, pointing into `bytes`. */
static icd_labelled_function *read_examples(char *bytes, size_t len, size_t *count) {
    icd_labelled_function *examples = NULL;
    size_t n = 0, at = 0;
    while (at < len) {
        unsigned label;
        size_t code_len;
        int used;
        if (sscanf(bytes + at, "%u %zu\n%n", &label, &code_len, &used) != 2) {
            fprintf(stderr, "bad example header at byte %zu\n", at);
            exit(2);
        }
        at += (size_t)used;
        examples = realloc(examples, (n + 1) * sizeof *examples);
        examples[n].code = bytes + at;
        examples[n].code_len = code_len;
        examples[n].label = label;
        at += code_len;
        n++;
    }
    *count = n;
    return examples;
}

static int print_step(const icd_training_step *step, void *user_data) {
    size_t *steps = user_data;
    (*steps)++;
    printf("step %zu %zu %zu %.17g %.17g %.17g\n", step->step, step->total_steps, step->epoch,
           step->loss, step->lr, step->grad_norm);
    return 0;
}

/* Nonzero: stop. */
static int stop_after_two(const icd_training_step *step, void *user_data) {
    (void)user_data;
    return step->step >= 2;
}

/* The call fails with `want` and a message holding `needle`. */
static void expect_error(icd_status got, icd_error *error, icd_status want, const char *needle,
                         const char *what) {
    CHECK(got == want, "%s: status %s, expected %s", what, icd_status_name(got),
          icd_status_name(want));
    CHECK(error != NULL, "%s: no error", what);
    if (error) {
        const char *message = icd_error_message(error);
        CHECK(strstr(message, needle) != NULL, "%s: message `%s` lacks `%s`", what, message,
              needle);
        icd_error_free(error);
    }
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s MODEL_DIR DATA RECIPE_JSON OUTPUT VALIDATED_OUTPUT STOPPED_OUTPUT\n",
                argv[0]);
        return 2;
    }
    const char *model = argv[1], *output = argv[4], *validated = argv[5], *stopped = argv[6];
    size_t data_len, recipe_len, count;
    char *data = read_file(argv[2], &data_len);
    char *recipe = read_file(argv[3], &recipe_len);
    icd_labelled_function *examples = read_examples(data, data_len, &count);

    size_t steps = 0;
    icd_error *error = NULL;
    icd_status status = icd_train(model, strlen(model), NULL, 0, recipe, recipe_len, examples,
                                  count, NULL, 0, output, strlen(output), print_step, &steps,
                                  &error);
    CHECK(status == ICD_OK, "train: %s", error ? icd_error_message(error) : icd_status_name(status));
    if (error) icd_error_free(error);
    CHECK(steps > 0, "train: the callback saw no step");

    /* With validation data (the training data again); no callback, no error_out. */
    status = icd_train(model, strlen(model), "flex", 4, recipe, recipe_len, examples, count,
                       examples, count, validated, strlen(validated), NULL, NULL, NULL);
    CHECK(status == ICD_OK, "validated run: %s", icd_status_name(status));

    /* Stopped by its callback: ICD_ERR_STOPPED, nothing written. */
    error = NULL;
    status = icd_train(model, strlen(model), NULL, 0, recipe, recipe_len, examples, count, NULL, 0,
                       stopped, strlen(stopped), stop_after_two, NULL, &error);
    expect_error(status, error, ICD_ERR_STOPPED, "after step 2", "stopped run");
    FILE *left = fopen(stopped, "r");
    CHECK(left == NULL, "a stopped run left %s behind", stopped);
    if (left) fclose(left);

    /* A validation array of length 0 is none, whatever its pointer: the run starts
       (and is stopped), where empty validation data would be refused first. */
    error = NULL;
    status = icd_train(model, strlen(model), NULL, 0, recipe, recipe_len, examples, count, examples,
                       0, stopped, strlen(stopped), stop_after_two, NULL, &error);
    expect_error(status, error, ICD_ERR_STOPPED, "after step 2", "validation of length 0");

    /* Bad arguments, each named. */
    error = NULL;
    status = icd_train(model, strlen(model), NULL, 0, NULL, 0, NULL, 3, NULL, 0, stopped,
                       strlen(stopped), NULL, NULL, &error);
    expect_error(status, error, ICD_ERR_NULL_ARGUMENT, "`train`", "NULL train");

    error = NULL;
    status = icd_train(model, strlen(model), NULL, 0, NULL, 0, examples, count, NULL, 2, stopped,
                       strlen(stopped), NULL, NULL, &error);
    expect_error(status, error, ICD_ERR_NULL_ARGUMENT, "`validation`", "NULL validation");

    icd_labelled_function bad = examples[0];
    bad.label = 7;
    error = NULL;
    status = icd_train(model, strlen(model), NULL, 0, NULL, 0, &bad, 1, NULL, 0, stopped,
                       strlen(stopped), NULL, NULL, &error);
    expect_error(status, error, ICD_ERR_INVALID_ARGUMENT, "row 1: label 7", "label outside");

    const char *typo = "{\"lr\": 0.001}";
    error = NULL;
    status = icd_train(model, strlen(model), NULL, 0, typo, strlen(typo), examples, count, NULL, 0,
                       stopped, strlen(stopped), NULL, NULL, &error);
    expect_error(status, error, ICD_ERR_INVALID_ARGUMENT, "unknown field `lr`", "unknown field");

    error = NULL;
    status = icd_train(model, strlen(model), NULL, 0, recipe, recipe_len, examples, count, NULL, 0,
                       output, strlen(output), NULL, NULL, &error);
    expect_error(status, error, ICD_ERR_INVALID_ARGUMENT, "not empty", "existing output");

    icd_labelled_function invalid = examples[0];
    invalid.code = "\xff\xfe";
    invalid.code_len = 2;
    error = NULL;
    status = icd_train(model, strlen(model), NULL, 0, NULL, 0, examples, count, &invalid, 1,
                       stopped, strlen(stopped), NULL, NULL, &error);
    expect_error(status, error, ICD_ERR_INVALID_UTF8, "`validation[0].code`", "invalid UTF-8");

    free(examples);
    free(recipe);
    free(data);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    fprintf(stderr, "train_test: all checks passed\n");
    return 0;
}
