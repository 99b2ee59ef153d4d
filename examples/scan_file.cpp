// Embedding the detector in a C++ analyzer: read a source file, find its function
// definitions with the library (as `icd scan` finds them), classify them in one batch,
// print a finding for each function at or above the threshold (suppressed ones, under an
// `icd: ignore` comment, are reported as such and do not count).
//
//   c++ -std=c++17 -Wall -Wextra -Werror -Iinclude examples/scan_file.cpp
//       -Ltarget/debug -linsecure_code_detector -Wl,-rpath,target/debug -o scan_file
//   ./scan_file MODEL_DIR FILE.c|FILE.cpp [THRESHOLD]
//
// Exit status: 0 no findings, 1 findings, 2 error (as linters do).
#include "insecure_code_detector.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// The library's error, as an exception that owns its message.
class DetectorError : public std::runtime_error {
  public:
    DetectorError(icd_status status, icd_error *error)
        : std::runtime_error(std::string(icd_status_name(status)) + ": " + icd_error_message(error)), status_(status) {
        icd_error_free(error);
    }
    icd_status status() const { return status_; }

  private:
    icd_status status_;
};

struct DetectorDeleter {
    void operator()(icd_detector *d) const { icd_detector_free(d); }
};

class Detector {
  public:
    explicit Detector(const std::string &model_dir, const std::string &backend = "auto") {
        icd_detector *raw = nullptr;
        icd_error *error = nullptr;
        icd_options options = icd_options_default();
        icd_status status = icd_detector_open(model_dir.data(), model_dir.size(), backend.data(), backend.size(),
                                              &options, &raw, &error);
        if (status != ICD_OK) throw DetectorError(status, error);
        handle_.reset(raw);
    }

    struct Result {
        icd_prediction prediction;
        std::vector<float> logits;
    };

    std::vector<Result> predict_batch(const std::vector<std::string> &codes) const {
        const size_t labels = icd_detector_num_labels(handle_.get());
        std::vector<icd_str> inputs;
        for (const auto &code : codes) inputs.push_back(icd_str{code.data(), code.size()});
        std::vector<icd_prediction> predictions(codes.size());
        std::vector<float> logits(codes.size() * labels);
        icd_error *error = nullptr;
        icd_status status = icd_detector_predict_batch(handle_.get(), inputs.data(), inputs.size(), predictions.data(),
                                                       logits.data(), logits.size(), &error);
        if (status != ICD_OK) throw DetectorError(status, error);
        std::vector<Result> results;
        for (size_t i = 0; i < codes.size(); i++) {
            results.push_back(Result{predictions[i], std::vector<float>(logits.begin() + i * labels,
                                                                        logits.begin() + (i + 1) * labels)});
        }
        return results;
    }

  private:
    std::unique_ptr<icd_detector, DetectorDeleter> handle_;
};

struct FunctionsDeleter {
    void operator()(icd_functions *f) const { icd_functions_free(f); }
};

struct Function {
    std::string name;
    std::string code;
    size_t first_line;
    size_t last_line;
    bool suppressed;
};

// The function definitions of `src`, in source order.
std::vector<Function> find_functions(const std::string &src, icd_language language) {
    icd_functions *raw = nullptr;
    icd_error *error = nullptr;
    icd_status status = icd_find_functions(src.data(), src.size(), language, &raw, &error);
    if (status != ICD_OK) throw DetectorError(status, error);
    std::unique_ptr<icd_functions, FunctionsDeleter> found(raw);
    size_t count = 0;
    const icd_function *items = icd_functions_items(found.get(), &count);
    std::vector<Function> functions;
    for (size_t i = 0; i < count; i++) {
        const icd_function &f = items[i];
        functions.push_back(Function{std::string(f.name, f.name_len), src.substr(f.start_byte, f.end_byte - f.start_byte),
                                     f.start_line, f.end_line, f.suppressed});
    }
    return functions;
}

bool ends_with(const std::string &s, const std::string &suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        std::fprintf(stderr, "usage: %s MODEL_DIR FILE [THRESHOLD]\n", argv[0]);
        return 2;
    }
    const double threshold = argc == 4 ? std::atof(argv[3]) : 0.5;
    std::ifstream in(argv[2], std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "cannot read %s\n", argv[2]);
        return 2;
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    try {
        Detector detector(argv[1]);
        const std::string path = argv[2];
        const bool cpp = ends_with(path, ".cpp") || ends_with(path, ".cc") || ends_with(path, ".hpp");
        std::vector<Function> functions = find_functions(buffer.str(), cpp ? ICD_LANGUAGE_CPP : ICD_LANGUAGE_C);
        std::vector<std::string> codes;
        for (const auto &f : functions) codes.push_back(f.code);
        std::vector<Detector::Result> results = detector.predict_batch(codes);
        int findings = 0;
        for (size_t i = 0; i < functions.size(); i++) {
            const icd_prediction &p = results[i].prediction;
            const bool over = p.insecure_probability >= threshold;
            const char *verdict = !over ? "ok" : functions[i].suppressed ? "suppressed" : "insecure";
            findings += over && !functions[i].suppressed ? 1 : 0;
            std::printf("%s:%zu-%zu: %s %s (insecure probability %.4f, %u tokens%s)\n", argv[2],
                        functions[i].first_line, functions[i].last_line, functions[i].name.c_str(), verdict,
                        p.insecure_probability, p.tokens, p.truncated ? ", truncated" : "");
        }
        return findings > 0 ? 1 : 0;
    } catch (const DetectorError &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }
}
