/*
 * Exercises every function of the C API, success and each error status, against a
 * fixture checkpoint. Built and run by tests/it/c_api.rs with -Wall -Wextra -Werror, and
 * under valgrind when it is installed.
 *
 * usage: api_test MODEL_DIR BAD_CONFIG_DIR BAD_TOKENIZER_DIR BAD_WEIGHTS_DIR CALIBRATION
 * (the three damaged copies of MODEL_DIR and CALIBRATION, a file from `icd calibrate` for
 * MODEL_DIR, are made by the Rust side)
 * Prints one line per classified input: "predict LABEL PROBABILITY TOKENS TRUNCATED LOGITS..."
 * and "calibrated THRESHOLD PROBABILITY" for the Rust side to compare with the library's
 * own results.
 */
/* mkdtemp, for the prediction cache's directory. */
#define _XOPEN_SOURCE 700
#include "insecure_code_detector.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                             \
        }                                                                           \
    } while (0)

/* Runs `call` (which writes its error to `err_`), expecting status `expected` and an
 * error whose message contains `needle`. */
#define EXPECT_ERROR(call, expected, needle)               \
    do {                                                   \
        icd_error *err_ = NULL;                            \
        icd_status status_ = (call);                       \
        expect_error(status_, err_, (expected), (needle)); \
    } while (0)

/* Expects `status` to be `expected`, with an error whose message contains `needle`. */
static void expect_error(icd_status status, icd_error *error, icd_status expected, const char *needle) {
    CHECK(status == expected);
    CHECK(error != NULL);
    if (error != NULL) {
        CHECK(icd_error_status(error) == expected);
        const char *message = icd_error_message(error);
        if (strstr(message, needle) == NULL) {
            fprintf(stderr, "message %s lacks %s\n", message, needle);
            failures++;
        }
        icd_error_free(error);
    }
}

static void print_prediction(const icd_prediction *p, const float *logits, size_t labels) {
    printf("predict %u %.9g %u %d", p->label, p->insecure_probability, p->tokens, p->truncated ? 1 : 0);
    for (size_t i = 0; i < labels; i++) {
        printf(" %.9g", logits[i]);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s MODEL_DIR BAD_CONFIG_DIR BAD_TOKENIZER_DIR BAD_WEIGHTS_DIR CALIBRATION\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    const char *bad_config = argv[2], *bad_tokenizer = argv[3], *bad_weights = argv[4];
    icd_error *error = NULL;

    CHECK(strlen(icd_version()) > 0);
    CHECK(strstr(icd_backends(), "flex") != NULL || strstr(icd_backends(), "ndarray") != NULL);
    CHECK(strcmp(icd_status_name(ICD_ERR_INVALID_UTF8), "ICD_ERR_INVALID_UTF8") == 0);
    CHECK(strcmp(icd_status_name(999), "ICD_UNKNOWN_STATUS") == 0);

    /* Open: each failure leaves the output untouched and explains itself. */
    icd_detector *sentinel = (icd_detector *)&failures;
    icd_detector *detector = sentinel;
    EXPECT_ERROR(icd_detector_open(dir, strlen(dir), NULL, 0, NULL, NULL, &err_), ICD_ERR_NULL_ARGUMENT, "detector_out");
    EXPECT_ERROR(icd_detector_open(NULL, 5, NULL, 0, NULL, &detector, &err_), ICD_ERR_NULL_ARGUMENT, "model_dir");
    const char *missing = "/nonexistent/checkpoint";
    EXPECT_ERROR(icd_detector_open(missing, strlen(missing), NULL, 0, NULL, &detector, &err_), ICD_ERR_IO, missing);
    EXPECT_ERROR(icd_detector_open(dir, strlen(dir), "tpu", 3, NULL, &detector, &err_), ICD_ERR_INVALID_ARGUMENT, "tpu");
    icd_options options = icd_options_default();
    options.preprocessing = 7;
    EXPECT_ERROR(icd_detector_open(dir, strlen(dir), NULL, 0, &options, &detector, &err_), ICD_ERR_INVALID_ARGUMENT, "preprocessing");
    options = icd_options_default();
    options.precision = 9;
    EXPECT_ERROR(icd_detector_open(dir, strlen(dir), NULL, 0, &options, &detector, &err_), ICD_ERR_INVALID_ARGUMENT, "precision");
    options = icd_options_default();
    options.max_tokens = 100000;
    EXPECT_ERROR(icd_detector_open(dir, strlen(dir), NULL, 0, &options, &detector, &err_), ICD_ERR_INVALID_ARGUMENT, "max_tokens");
    EXPECT_ERROR(icd_detector_open(bad_config, strlen(bad_config), NULL, 0, NULL, &detector, &err_), ICD_ERR_CONFIG,
                 "config.json");
    EXPECT_ERROR(icd_detector_open(bad_tokenizer, strlen(bad_tokenizer), NULL, 0, NULL, &detector, &err_),
                 ICD_ERR_TOKENIZER, "merges.txt");
    EXPECT_ERROR(icd_detector_open(bad_weights, strlen(bad_weights), NULL, 0, NULL, &detector, &err_), ICD_ERR_WEIGHTS,
                 "model.safetensors");
    if (strstr(icd_backends(), "cuda") == NULL) {
        EXPECT_ERROR(icd_detector_open(dir, strlen(dir), "cuda", 4, NULL, &detector, &err_),
                     ICD_ERR_BACKEND_UNAVAILABLE, "cuda");
    }
    /* A NULL error_out is allowed: the status alone comes back. */
    CHECK(icd_detector_open(missing, strlen(missing), NULL, 0, NULL, &detector, NULL) == ICD_ERR_IO);
    CHECK(detector == sentinel);

    /* Open for real; the path needs no NUL terminator. */
    char *unterminated = malloc(strlen(dir));
    memcpy(unterminated, dir, strlen(dir));
    options = icd_options_default();
    options.batch_size = 2;
    icd_status status = icd_detector_open(unterminated, strlen(dir), "auto", 4, &options, &detector, &error);
    free(unterminated);
    if (status != ICD_OK) {
        fprintf(stderr, "open failed: %s\n", icd_error_message(error));
        icd_error_free(error);
        return 1;
    }
    CHECK(detector != sentinel);
    CHECK(icd_detector_max_tokens(detector) == 512);
    CHECK(icd_detector_backend(detector) != NULL);
    {
        const char *execution = icd_detector_execution(detector);
        CHECK(execution != NULL);
        CHECK(strncmp(execution, "kernel ", 7) == 0 || strncmp(execution, "tensors ", 8) == 0);
        CHECK(icd_detector_execution(NULL) == NULL);
    }
    {
        /* Only the GPU backends compile kernels, one model call per shape. */
        size_t calls = 99;
        const char *backend = icd_detector_backend(detector);
        int gpu = strcmp(backend, "wgpu") == 0 || strcmp(backend, "cuda") == 0;
        CHECK(icd_detector_warm_up(detector, &calls, NULL) == ICD_OK);
        CHECK(gpu ? calls > 0 : calls == 0);
        CHECK(icd_detector_warm_up(detector, NULL, NULL) == ICD_OK);
        EXPECT_ERROR(icd_detector_warm_up(NULL, &calls, &err_), ICD_ERR_NULL_ARGUMENT, "detector");
    }
    size_t labels = icd_detector_num_labels(detector);
    CHECK(labels >= 1 && labels <= 8);
    CHECK(icd_detector_num_labels(NULL) == 0);

    const char *name = NULL;
    size_t name_len = 0;
    CHECK(icd_detector_label_name(detector, 0, &name, &name_len, NULL) == ICD_OK);
    CHECK(name != NULL && strlen(name) == name_len);
    EXPECT_ERROR(icd_detector_label_name(detector, labels, &name, &name_len, &err_), ICD_ERR_INVALID_ARGUMENT, "index");

    /* Predict. */
    const char *code = "int get(int *a, int i) { return a[i]; }";
    icd_prediction prediction;
    float logits[8];
    status = icd_detector_predict(detector, code, strlen(code), &prediction, logits, 8, &error);
    CHECK(status == ICD_OK);
    if (status == ICD_OK) {
        CHECK(prediction.insecure_probability >= 0.0f && prediction.insecure_probability <= 1.0f);
        CHECK(prediction.label < labels);
        print_prediction(&prediction, logits, labels);

        /* The bf16 (1) and int8 (3) options give nearly the same probability; tf32 (4),
         * on a CPU backend, which has no TF32 products, exactly the same. */
        const struct { uint32_t precision; float tolerance; } reduced_modes[] = {{1, 1e-2f}, {3, 2e-2f}, {4, 0.0f}};
        for (size_t m = 0; m < sizeof reduced_modes / sizeof reduced_modes[0]; m++) {
            icd_options reduced = icd_options_default();
            reduced.precision = reduced_modes[m].precision;
            icd_detector *approximate_detector = NULL;
            CHECK(icd_detector_open(dir, strlen(dir), NULL, 0, &reduced, &approximate_detector, NULL) == ICD_OK);
            icd_prediction approximate;
            if (approximate_detector != NULL) {
                CHECK(icd_detector_predict(approximate_detector, code, strlen(code), &approximate, NULL, 0, NULL) == ICD_OK);
                float difference = approximate.insecure_probability - prediction.insecure_probability;
                CHECK(difference <= reduced_modes[m].tolerance && difference >= -reduced_modes[m].tolerance);
                icd_detector_free(approximate_detector);
            }
        }
    }

    /* Errors leave outputs untouched and the detector usable. */
    icd_prediction untouched = {.label = 77, .insecure_probability = -1.0f, .tokens = 0, .truncated = false};
    icd_prediction out = untouched;
    const char invalid_utf8[] = {'i', 'n', 't', ' ', (char)0xff, (char)0xfe, ';'};
    EXPECT_ERROR(icd_detector_predict(detector, invalid_utf8, sizeof invalid_utf8, &out, NULL, 0, &err_), ICD_ERR_INVALID_UTF8, "UTF-8");
    CHECK(out.label == 77 && out.insecure_probability == -1.0f);
    EXPECT_ERROR(icd_detector_predict(detector, NULL, 10, &out, NULL, 0, &err_), ICD_ERR_NULL_ARGUMENT,
                 "codes");
    EXPECT_ERROR(icd_detector_predict(NULL, code, strlen(code), &out, NULL, 0, &err_), ICD_ERR_NULL_ARGUMENT, "detector");
    EXPECT_ERROR(icd_detector_predict(detector, code, strlen(code), NULL, NULL, 0, &err_), ICD_ERR_NULL_ARGUMENT, "predictions_out");
    float small[1] = {-5.0f};
    if (labels > 1) {
        EXPECT_ERROR(icd_detector_predict(detector, code, strlen(code), &out, small, 1, &err_), ICD_ERR_INVALID_ARGUMENT, "logits_capacity");
        CHECK(small[0] == -5.0f);
    }
    CHECK(out.label == 77);

    /* The empty function is valid input (pointer may be NULL when the length is 0). */
    CHECK(icd_detector_predict(detector, NULL, 0, &out, logits, 8, NULL) == ICD_OK);
    print_prediction(&out, logits, labels);

    /* A batch, in input order, equal to single predictions; without NUL terminators. */
    const char *texts[3] = {"void f(void) {}", "int x = 1;XXXX", "char *p = malloc(10); strcpy(p, s);"};
    icd_str batch[3] = {{texts[0], strlen(texts[0])}, {texts[1], strlen(texts[1]) - 4}, {texts[2], strlen(texts[2])}};
    icd_prediction predictions[3];
    float batch_logits[3 * 8];
    CHECK(icd_detector_predict_batch(detector, batch, 3, predictions, batch_logits, 3 * labels, NULL) == ICD_OK);
    for (int i = 0; i < 3; i++) {
        icd_prediction single;
        float single_logits[8];
        CHECK(icd_detector_predict(detector, batch[i].ptr, batch[i].len, &single, single_logits, 8, NULL) == ICD_OK);
        CHECK(single.label == predictions[i].label);
        CHECK(single.tokens == predictions[i].tokens);
        print_prediction(&predictions[i], batch_logits + i * labels, labels);
    }
    /* One bad member fails the whole batch and names it; nothing is written. */
    icd_str bad_batch[2] = {{texts[0], strlen(texts[0])}, {invalid_utf8, sizeof invalid_utf8}};
    icd_prediction bad_out[2] = {untouched, untouched};
    EXPECT_ERROR(icd_detector_predict_batch(detector, bad_batch, 2, bad_out, NULL, 0, &err_), ICD_ERR_INVALID_UTF8, "codes[1]");
    CHECK(bad_out[0].label == 77);
    /* A count no array can hold is refused before any member is read. */
    EXPECT_ERROR(icd_detector_predict_batch(detector, bad_batch, SIZE_MAX, bad_out, NULL, 0, &err_),
                 ICD_ERR_INVALID_ARGUMENT, "codes");
    CHECK(bad_out[0].label == 77);
    CHECK(icd_detector_predict_batch(detector, NULL, 0, NULL, NULL, 0, NULL) == ICD_OK);

    /* Explanations: the first fixture input's token and line scores, printed for the
     * Rust side to hold to transformers' references; a batch equal to singles. */
    const char *explained = "int main(void) { return 0; }";
    icd_explanation *explanation = NULL;
    CHECK(icd_detector_explain(detector, explained, strlen(explained), &explanation, NULL) == ICD_OK);
    size_t token_count = 0, line_count = 0, logit_count = 0;
    const icd_token_score *tokens = icd_explanation_tokens(explanation, &token_count);
    const icd_line_score *lines = icd_explanation_lines(explanation, &line_count);
    const icd_prediction *explained_prediction = icd_explanation_prediction(explanation);
    CHECK(icd_explanation_logits(explanation, &logit_count) != NULL && logit_count == labels);
    CHECK(explained_prediction != NULL && explained_prediction->tokens == token_count);
    CHECK(tokens[0].start == tokens[0].end && tokens[0].line == 0);
    printf("explain");
    float sum = 0;
    for (size_t i = 0; i < token_count; i++) {
        printf(" %.9g", tokens[i].score);
        sum += tokens[i].score;
    }
    printf("\nlines");
    for (size_t i = 0; i < line_count; i++) {
        printf(" %zu:%.9g", lines[i].line, lines[i].score);
    }
    printf("\n");
    CHECK(sum > 0.999f && sum < 1.001f);
    icd_str explain_batch[2] = {{texts[0], strlen(texts[0])}, {explained, strlen(explained)}};
    icd_explanation *explanations[2] = {NULL, NULL};
    CHECK(icd_detector_explain_batch(detector, explain_batch, 2, explanations, NULL) == ICD_OK);
    size_t batch_count = 0;
    const icd_token_score *batch_tokens = icd_explanation_tokens(explanations[1], &batch_count);
    CHECK(batch_count == token_count);
    for (size_t i = 0; i < token_count && i < batch_count; i++) {
        CHECK(batch_tokens[i].score == tokens[i].score && batch_tokens[i].line == tokens[i].line);
    }
    icd_explanation_free(explanations[0]);
    icd_explanation_free(explanations[1]);
    icd_explanation_free(explanation);
    icd_explanation_free(NULL);
    size_t none = 5;
    CHECK(icd_explanation_tokens(NULL, &none) == NULL && none == 0);
    CHECK(icd_explanation_prediction(NULL) == NULL);
    /* Failures write nothing. */
    icd_explanation *kept = (icd_explanation *)&failures;
    EXPECT_ERROR(icd_detector_explain(detector, explained, strlen(explained), NULL, &err_), ICD_ERR_NULL_ARGUMENT,
                 "explanation_out");
    EXPECT_ERROR(icd_detector_explain(detector, invalid_utf8, sizeof invalid_utf8, &kept, &err_), ICD_ERR_INVALID_UTF8,
                 "code");
    icd_str bad_explain[2] = {{explained, strlen(explained)}, {invalid_utf8, sizeof invalid_utf8}};
    icd_explanation *kept_batch[2] = {kept, kept};
    EXPECT_ERROR(icd_detector_explain_batch(detector, bad_explain, 2, kept_batch, &err_), ICD_ERR_INVALID_UTF8,
                 "codes[1]");
    CHECK(kept_batch[0] == kept && kept_batch[1] == kept);
    CHECK(kept == (icd_explanation *)&failures);

    /* Windows: a function that fits gives predict's result with itself as its window;
     * a long one is classified window by window (the Rust side checks the printed
     * result against its own predict_windows). */
    icd_window_prediction window;
    float window_logits[8];
    CHECK(icd_detector_predict_windows(detector, code, strlen(code), 0, &window, window_logits, 8, NULL) == ICD_OK);
    CHECK(window.windows == 1 && window.start_byte == 0 && window.end_byte == strlen(code));
    CHECK(window.prediction.label == prediction.label && window.prediction.tokens == prediction.tokens);
    CHECK(window.prediction.insecure_probability == prediction.insecure_probability);
    const char *body_line = "    x = x + 1;\n";
    size_t long_len = strlen("int f(void)\n{\n") + 300 * strlen(body_line) + strlen("}\n");
    char *long_code = malloc(long_len + 1);
    strcpy(long_code, "int f(void)\n{\n");
    for (int i = 0; i < 300; i++) {
        strcat(long_code, body_line);
    }
    strcat(long_code, "}\n");
    CHECK(icd_detector_predict_windows(detector, long_code, long_len, 100, &window, window_logits, 8, NULL) == ICD_OK);
    CHECK(window.windows > 1 && window.end_byte <= long_len && window.start_byte < window.end_byte);
    CHECK(!window.prediction.truncated);
    printf("windows %zu %zu %zu %.9g", window.windows, window.start_byte, window.end_byte,
           window.prediction.insecure_probability);
    for (size_t i = 0; i < labels; i++) {
        printf(" %.9g", window_logits[i]);
    }
    printf("\n");
    icd_window_prediction kept_window = window;
    EXPECT_ERROR(icd_detector_predict_windows(detector, invalid_utf8, sizeof invalid_utf8, 0, &window, NULL, 0, &err_),
                 ICD_ERR_INVALID_UTF8, "code");
    EXPECT_ERROR(icd_detector_predict_windows(detector, code, strlen(code), 0, NULL, NULL, 0, &err_),
                 ICD_ERR_NULL_ARGUMENT, "prediction_out");
    EXPECT_ERROR(icd_detector_predict_windows(detector, code, strlen(code), 100000, &window, NULL, 0, &err_),
                 ICD_ERR_INVALID_ARGUMENT, "stride");
    if (labels > 1) {
        EXPECT_ERROR(icd_detector_predict_windows(detector, code, strlen(code), 0, &window, small, 1, &err_),
                     ICD_ERR_INVALID_ARGUMENT, "logits_capacity");
    }
    CHECK(kept_window.windows == window.windows && kept_window.start_byte == window.start_byte &&
          kept_window.end_byte == window.end_byte &&
          kept_window.prediction.insecure_probability == window.prediction.insecure_probability);
    free(long_code);

    /* Function finding, as icd scan does it: names, lines, bytes, suppressions. */
    const char *source = "// icd: ignore\nint a(void) { return 0; }\n\nstatic int\nb(int x)\n{\n    return x;\n}\n";
    icd_functions *found = NULL;
    CHECK(icd_find_functions(source, strlen(source), ICD_LANGUAGE_C, &found, NULL) == ICD_OK);
    size_t function_count = 0;
    const icd_function *functions = icd_functions_items(found, &function_count);
    CHECK(function_count == 2);
    if (function_count == 2) {
        CHECK(strcmp(functions[0].name, "a") == 0 && functions[0].name_len == 1);
        CHECK(functions[0].start_line == 2 && functions[0].end_line == 2 && functions[0].suppressed);
        CHECK(strcmp(functions[1].name, "b") == 0 && !functions[1].suppressed);
        CHECK(functions[1].start_line == 4 && functions[1].end_line == 8);
        CHECK(strncmp(source + functions[1].start_byte, "static int\nb(int x)", 19) == 0);
        CHECK(functions[1].end_byte == strlen(source) - 1);
        CHECK(strlen(functions[0].fingerprint) > 32 && strcmp(functions[0].fingerprint, functions[1].fingerprint) != 0);
    }
    size_t unparsed_count = 9;
    CHECK(icd_functions_unparsed_lines(found, &unparsed_count) != NULL || unparsed_count == 0);
    CHECK(unparsed_count == 0);
    icd_functions_free(found);
    icd_functions_free(NULL);
    CHECK(icd_functions_items(NULL, &unparsed_count) == NULL && unparsed_count == 0);
    const char *cpp = "namespace n { int C::m() const { return 1; } }\n";
    CHECK(icd_find_functions(cpp, strlen(cpp), ICD_LANGUAGE_CPP, &found, NULL) == ICD_OK);
    functions = icd_functions_items(found, &function_count);
    CHECK(function_count == 1 && strcmp(functions[0].name, "C::m") == 0);
    icd_functions_free(found);
    icd_functions *kept_functions = (icd_functions *)&failures;
    EXPECT_ERROR(icd_find_functions(source, strlen(source), 7, &kept_functions, &err_), ICD_ERR_INVALID_ARGUMENT,
                 "language");
    EXPECT_ERROR(icd_find_functions(invalid_utf8, sizeof invalid_utf8, ICD_LANGUAGE_C, &kept_functions, &err_),
                 ICD_ERR_INVALID_UTF8, "source");
    EXPECT_ERROR(icd_find_functions(source, strlen(source), ICD_LANGUAGE_C, NULL, &err_), ICD_ERR_NULL_ARGUMENT,
                 "functions_out");
    CHECK(kept_functions == (icd_functions *)&failures);
    CHECK(icd_find_functions(NULL, 0, ICD_LANGUAGE_C, &found, NULL) == ICD_OK);
    CHECK(icd_functions_items(found, &function_count) != NULL && function_count == 0);
    icd_functions_free(found);

    /* A tree, walked as icd scan walks it: this file's directory holds sample.c. */
    char dir_of_this_file[4096];
    snprintf(dir_of_this_file, sizeof dir_of_this_file, "%s", __FILE__);
    char *slash = strrchr(dir_of_this_file, '/');
    if (slash != NULL) *slash = '\0';
    icd_str tree_paths[1] = {{dir_of_this_file, strlen(dir_of_this_file)}};
    icd_tree *tree = NULL;
    CHECK(icd_find_functions_under(tree_paths, 1, 0, false, &tree, NULL) == ICD_OK);
    size_t tree_count = 0, copy_name_found = 0;
    const icd_tree_function *tree_functions = icd_tree_functions(tree, &tree_count);
    for (size_t i = 0; i < tree_count; i++) {
        const icd_tree_function *t = &tree_functions[i];
        CHECK(strlen(t->file) == t->file_len && strlen(t->code) == t->code_len);
        CHECK(t->language == ICD_LANGUAGE_C || t->language == ICD_LANGUAGE_CPP);
        if (strstr(t->file, "sample.c") != NULL && strcmp(t->function.name, "copy_name") == 0) {
            copy_name_found++;
            CHECK(t->function.start_line == 4 && t->function.end_line == 8);
            CHECK(t->code_len == t->function.end_byte - t->function.start_byte);
            CHECK(strncmp(t->code, "static int copy_name", 20) == 0);
        }
    }
    CHECK(copy_name_found == 1);
    size_t gap_count = 7;
    icd_tree_gaps(tree, &gap_count);
    CHECK(gap_count == 0);
    icd_tree_free(tree);
    icd_tree_free(NULL);
    icd_tree *kept_tree = (icd_tree *)&failures;
    const char *absent = "/nonexistent/tree";
    icd_str absent_paths[1] = {{absent, strlen(absent)}};
    EXPECT_ERROR(icd_find_functions_under(absent_paths, 1, 0, false, &kept_tree, &err_), ICD_ERR_IO, absent);
    EXPECT_ERROR(icd_find_functions_under(NULL, 1, 0, false, &kept_tree, &err_), ICD_ERR_NULL_ARGUMENT, "paths");
    EXPECT_ERROR(icd_find_functions_under(tree_paths, 1, 0, false, NULL, &err_), ICD_ERR_NULL_ARGUMENT, "tree_out");
    CHECK(kept_tree == (icd_tree *)&failures);

    /* The same tree listed here and read in parts, as a distributed scan reads it: the
     * parts together hold what icd_find_functions_under found. */
    {
        icd_listing *listing = NULL;
        CHECK(icd_list_sources(tree_paths, 1, false, &listing, NULL) == ICD_OK);
        size_t source_count = 0, listing_gaps = 7;
        const icd_source *sources = icd_listing_sources(listing, &source_count);
        icd_listing_gaps(listing, &listing_gaps);
        CHECK(source_count >= 2 && listing_gaps == 0);
        size_t found_in_parts = 0, whole_count = 0;
        icd_tree *whole = NULL;
        CHECK(icd_find_functions_under(tree_paths, 1, 0, false, &whole, NULL) == ICD_OK);
        const icd_tree_function *whole_functions = icd_tree_functions(whole, &whole_count);
        for (size_t i = 0; i < source_count; i++) {
            CHECK(strlen(sources[i].path) == sources[i].path_len && !sources[i].named);
            icd_tree *part = NULL;
            CHECK(icd_find_functions_in_sources(&sources[i], 1, 0, &part, NULL) == ICD_OK);
            size_t part_count = 0;
            const icd_tree_function *part_functions = icd_tree_functions(part, &part_count);
            for (size_t j = 0; j < part_count && found_in_parts + j < whole_count; j++) {
                CHECK(strcmp(part_functions[j].file, whole_functions[found_in_parts + j].file) == 0);
                CHECK(strcmp(part_functions[j].code, whole_functions[found_in_parts + j].code) == 0);
            }
            found_in_parts += part_count;
            icd_tree_free(part);
        }
        CHECK(found_in_parts == whole_count);
        icd_tree_free(whole);
        /* A named file that is gone is an error naming it; a bad language, the field. */
        icd_source named = {absent, strlen(absent), ICD_LANGUAGE_C, true};
        icd_tree *kept = (icd_tree *)&failures;
        EXPECT_ERROR(icd_find_functions_in_sources(&named, 1, 0, &kept, &err_), ICD_ERR_IO, absent);
        icd_source bad_language = sources[0];
        bad_language.language = 7;
        EXPECT_ERROR(icd_find_functions_in_sources(&bad_language, 1, 0, &kept, &err_), ICD_ERR_INVALID_ARGUMENT,
                     "sources[0].language");
        EXPECT_ERROR(icd_find_functions_in_sources(NULL, 1, 0, &kept, &err_), ICD_ERR_NULL_ARGUMENT, "sources");
        CHECK(kept == (icd_tree *)&failures);
        icd_listing *kept_listing = (icd_listing *)&failures;
        EXPECT_ERROR(icd_list_sources(absent_paths, 1, false, &kept_listing, &err_), ICD_ERR_IO, absent);
        EXPECT_ERROR(icd_list_sources(tree_paths, 1, false, NULL, &err_), ICD_ERR_NULL_ARGUMENT, "listing_out");
        icd_str nul_paths[1] = {{"a\0b", 3}};
        EXPECT_ERROR(icd_list_sources(nul_paths, 1, false, &kept_listing, &err_), ICD_ERR_INVALID_ARGUMENT,
                     "`paths[0]` holds a NUL byte");
        CHECK(kept_listing == (icd_listing *)&failures);
        CHECK(icd_listing_sources(NULL, &source_count) == NULL && source_count == 0);
        icd_listing_free(listing);
        icd_listing_free(NULL);
    }

    /* Two detectors sharing a prediction cache: the second classifies nothing the first
     * did, and gives the same results. */
    {
        char cache_dir[] = "/tmp/icd-api-test-cache-XXXXXX";
        CHECK(mkdtemp(cache_dir) != NULL);
        icd_str cached_codes[2] = {{"int a(void) { return 0; }", 25}, {"int b(int x) { return x; }", 26}};
        icd_prediction first[2], second[2];
        float first_logits[4], second_logits[4];
        for (int round = 0; round < 2; round++) {
            icd_detector *cached = NULL;
            CHECK(icd_detector_open(dir, strlen(dir), NULL, 0, NULL, &cached, NULL) == ICD_OK);
            CHECK(icd_detector_use_cache(cached, cache_dir, strlen(cache_dir), 0, NULL) == ICD_OK);
            CHECK(icd_detector_predict_batch(cached, cached_codes, 2, round == 0 ? first : second,
                                             round == 0 ? first_logits : second_logits, 4, NULL) == ICD_OK);
            CHECK(icd_detector_model_calls(cached) == (round == 0 ? 2u : 0u));
            EXPECT_ERROR(icd_detector_use_cache(cached, NULL, 3, 0, &err_), ICD_ERR_NULL_ARGUMENT, "dir");
            icd_detector_free(cached);
        }
        CHECK(memcmp(first_logits, second_logits, sizeof first_logits) == 0);
        CHECK(first[1].insecure_probability == second[1].insecure_probability);
        CHECK(icd_detector_model_calls(NULL) == 0);
        EXPECT_ERROR(icd_detector_use_cache(NULL, cache_dir, strlen(cache_dir), 0, &err_), ICD_ERR_NULL_ARGUMENT,
                     "detector");
        char command[128];
        snprintf(command, sizeof command, "rm -rf %s", cache_dir);
        CHECK(system(command) == 0);
    }

    /* Calibrated: the file's threshold, and the calibrated probability; none without a
     * file; a missing file or a damaged checkpoint leaves the output untouched. */
    {
        const char *calibration = argv[5];
        CHECK(isnan(icd_detector_threshold(detector)));
        CHECK(isnan(icd_detector_threshold(NULL)));
        icd_detector *calibrated = NULL;
        status = icd_detector_open_calibrated(dir, strlen(dir), NULL, 0, NULL, calibration, strlen(calibration),
                                              &calibrated, &error);
        CHECK(status == ICD_OK);
        if (status == ICD_OK) {
            double threshold = icd_detector_threshold(calibrated);
            CHECK(threshold >= 0.0 && threshold <= 1.0);
            const char *risky = "char *p = malloc(10); strcpy(p, s);";
            icd_prediction p;
            CHECK(icd_detector_predict(calibrated, risky, strlen(risky), &p, NULL, 0, NULL) == ICD_OK);
            printf("calibrated %.17g %.9g\n", threshold, p.insecure_probability);
            icd_detector_free(calibrated);
        } else {
            fprintf(stderr, "calibrated open failed: %s\n", icd_error_message(error));
            icd_error_free(error);
        }
        const char *missing_file = "/nonexistent/calibration.json";
        icd_detector *kept = sentinel;
        EXPECT_ERROR(icd_detector_open_calibrated(dir, strlen(dir), NULL, 0, NULL, missing_file, strlen(missing_file),
                                                  &kept, &err_),
                     ICD_ERR_IO, missing_file);
        EXPECT_ERROR(icd_detector_open_calibrated(bad_weights, strlen(bad_weights), NULL, 0, NULL, calibration,
                                                  strlen(calibration), &kept, &err_),
                     ICD_ERR_CONFIG, "checkpoint");
        CHECK(kept == sentinel);
    }

    icd_detector_free(detector);
    icd_detector_free(NULL);
    icd_error_free(NULL);
    CHECK(icd_error_status(NULL) == ICD_ERR_NULL_ARGUMENT);
    CHECK(strcmp(icd_error_message(NULL), "") == 0);

    if (failures != 0) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    fprintf(stderr, "all C API checks passed\n");
    return 0;
}
