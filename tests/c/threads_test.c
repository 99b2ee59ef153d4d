/*
 * One icd_detector shared by 8 threads, 200 predictions each, must give exactly the
 * serial results. Built and run by tests/it/c_api.rs.
 *
 * usage: threads_test MODEL_DIR
 */
#include "insecure_code_detector.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define THREADS 8
#define ROUNDS 200
#define TEXTS 6
#define MAX_LABELS 8

static const char *texts[TEXTS] = {
    "int main(void) { return 0; }",
    "",
    "void copy(char *dst, const char *src) { strcpy(dst, src); }",
    "static int\r\nadd(int a,\tint b)\r\n{\r\n\treturn a + b;\r\n}\r\n",
    "/* caf\xc3\xa9 */ int f(int *a, int i) { return a[i]; }",
    "char buf[16]; gets(buf);",
};

static icd_detector *detector;
static icd_prediction serial[TEXTS];
static float serial_logits[TEXTS][MAX_LABELS];
static size_t labels;

static void *work(void *arg) {
    size_t thread = (size_t)arg;
    long mismatches = 0;
    for (size_t round = 0; round < ROUNDS; round++) {
        size_t i = (thread * 7 + round) % TEXTS;
        icd_prediction p;
        float logits[MAX_LABELS];
        if (icd_detector_predict(detector, texts[i], strlen(texts[i]), &p, logits, MAX_LABELS, NULL) != ICD_OK ||
            p.label != serial[i].label || p.insecure_probability != serial[i].insecure_probability ||
            p.tokens != serial[i].tokens || memcmp(logits, serial_logits[i], labels * sizeof(float)) != 0) {
            mismatches++;
        }
    }
    return (void *)mismatches;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    icd_error *error = NULL;
    if (icd_detector_open(argv[1], strlen(argv[1]), NULL, 0, NULL, &detector, &error) != ICD_OK) {
        fprintf(stderr, "open failed: %s\n", icd_error_message(error));
        icd_error_free(error);
        return 1;
    }
    labels = icd_detector_num_labels(detector);
    for (size_t i = 0; i < TEXTS; i++) {
        if (icd_detector_predict(detector, texts[i], strlen(texts[i]), &serial[i], serial_logits[i], MAX_LABELS, NULL) !=
            ICD_OK) {
            fprintf(stderr, "serial prediction %zu failed\n", i);
            return 1;
        }
    }
    pthread_t threads[THREADS];
    for (size_t t = 0; t < THREADS; t++) {
        pthread_create(&threads[t], NULL, work, (void *)t);
    }
    long mismatches = 0;
    for (size_t t = 0; t < THREADS; t++) {
        void *result;
        pthread_join(threads[t], &result);
        mismatches += (long)result;
    }
    icd_detector_free(detector);
    if (mismatches != 0) {
        fprintf(stderr, "%ld of %d concurrent predictions differ from the serial ones\n", mismatches, THREADS * ROUNDS);
        return 1;
    }
    fprintf(stderr, "%d concurrent predictions equal the serial ones\n", THREADS * ROUNDS);
    return 0;
}
