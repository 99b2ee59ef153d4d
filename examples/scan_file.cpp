// Embedding the detector in a C++ analyzer: read a source file, cut it into top-level
// brace blocks (a stand-in for the analyzer's own function finder), classify them in
// one batch, print a finding for each block at or above the threshold.
//
//   c++ -std=c++17 -Wall -Wextra -Werror -Iinclude examples/scan_file.cpp
//       -Ltarget/debug -linsecure_code_detector -Wl,-rpath,target/debug -o scan_file
//   ./scan_file MODEL_DIR FILE.c [THRESHOLD]
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

struct Block {
    std::string text;
    int first_line;
    int last_line;
};

// Top-level `{...}` blocks, each with its signature: the text since the last `;`, `}`,
// comment or preprocessor line at file scope. Braces inside comments, strings and
// character literals are skipped.
std::vector<Block> top_level_blocks(const std::string &src) {
    std::vector<Block> blocks;
    size_t start = 0;  // just past the last file-scope boundary
    int depth = 0, line = 1, start_line = 1;
    auto boundary = [&](size_t next) {
        if (depth == 0) {
            start = next;
            start_line = line;
        }
    };
    for (size_t i = 0; i < src.size(); i++) {
        char c = src[i];
        char next = i + 1 < src.size() ? src[i + 1] : '\0';
        if (c == '\n') {
            line++;
        } else if (c == '#' && depth == 0 && (i == 0 || src[i - 1] == '\n')) {
            while (i + 1 < src.size() && src[i + 1] != '\n') i++;
            boundary(i + 1);
        } else if (c == '/' && next == '/') {
            while (i + 1 < src.size() && src[i + 1] != '\n') i++;
            boundary(i + 1);
        } else if (c == '/' && next == '*') {
            for (i += 2; i + 1 < src.size() && !(src[i] == '*' && src[i + 1] == '/'); i++) {
                if (src[i] == '\n') line++;
            }
            i++;
            boundary(i + 1);
        } else if (c == '"' || c == '\'') {
            for (i++; i < src.size() && src[i] != c; i++) {
                if (src[i] == '\\') i++;
            }
        } else if (c == ';') {
            boundary(i + 1);
        } else if (c == '{') {
            depth++;
        } else if (c == '}' && depth > 0 && --depth == 0) {
            // Skip the whitespace before the signature so the range starts on it.
            while (start < i && (src[start] == '\n' || src[start] == ' ' || src[start] == '\t' || src[start] == '\r')) {
                if (src[start] == '\n') start_line++;
                start++;
            }
            blocks.push_back(Block{src.substr(start, i + 1 - start), start_line, line});
            boundary(i + 1);
        }
    }
    return blocks;
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
        std::vector<Block> blocks = top_level_blocks(buffer.str());
        std::vector<std::string> codes;
        for (const auto &b : blocks) codes.push_back(b.text);
        std::vector<Detector::Result> results = detector.predict_batch(codes);
        int findings = 0;
        for (size_t i = 0; i < blocks.size(); i++) {
            const icd_prediction &p = results[i].prediction;
            const bool insecure = p.insecure_probability >= threshold;
            findings += insecure ? 1 : 0;
            std::printf("%s:%d-%d: %s (insecure probability %.4f, %u tokens%s)\n", argv[2], blocks[i].first_line,
                        blocks[i].last_line, insecure ? "insecure" : "ok", p.insecure_probability, p.tokens,
                        p.truncated ? ", truncated" : "");
        }
        return findings > 0 ? 1 : 0;
    } catch (const DetectorError &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }
}
