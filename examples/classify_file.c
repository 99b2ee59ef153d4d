/*
 * Embedding the detector in a C analyzer: classify one source file (for example a
 * function the analyzer extracted) and print the verdict.
 *
 *   cc -std=c11 -Wall -Wextra -Werror -Iinclude examples/classify_file.c
 *      -Ltarget/debug -linsecure_code_detector -Wl,-rpath,target/debug -o classify_file
 *   ./classify_file MODEL_DIR FUNCTION.c
 *
 * Exit status: 0 not flagged, 1 flagged insecure, 2 error.
 */
#include "insecure_code_detector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *bigger = realloc(buf, cap *= 2);
            if (bigger == NULL) free(buf);
            buf = bigger;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL_DIR FUNCTION.c\n", argv[0]);
        return 2;
    }
    size_t len = 0;
    char *code = read_file(argv[2], &len);
    if (code == NULL) {
        fprintf(stderr, "cannot read %s\n", argv[2]);
        return 2;
    }
    icd_detector *detector = NULL;
    icd_error *error = NULL;
    if (icd_detector_open(argv[1], strlen(argv[1]), NULL, 0, NULL, &detector, &error) != ICD_OK) {
        fprintf(stderr, "error: %s\n", icd_error_message(error));
        icd_error_free(error);
        free(code);
        return 2;
    }
    icd_prediction p;
    int exit_code = 2;
    if (icd_detector_predict(detector, code, len, &p, NULL, 0, &error) == ICD_OK) {
        const char *label = NULL;
        icd_detector_label_name(detector, p.label, &label, NULL, NULL);
        printf("%s: %s (label %s, insecure probability %.4f, %u tokens%s)\n", argv[2],
               p.insecure_probability >= 0.5f ? "insecure" : "ok", label, p.insecure_probability, p.tokens,
               p.truncated ? ", truncated" : "");
        exit_code = p.insecure_probability >= 0.5f ? 1 : 0;
    } else {
        fprintf(stderr, "error: %s\n", icd_error_message(error));
        icd_error_free(error);
    }
    icd_detector_free(detector);
    free(code);
    return exit_code;
}
