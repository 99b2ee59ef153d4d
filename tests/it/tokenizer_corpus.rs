//! Token ids of the real RoBERTa/CodeBERT vocabulary against transformers' for the 600
//! nginx functions of the shared C corpus. Needs the shared data directory (see
//! `ICD_SHARED_DIR`); skips with a message where it is absent.

use std::io::{BufRead, BufReader};

use crate::common::*;
use insecure_code_detector::CodeTokenizer;

/// The real RoBERTa tokenizer and the nginx corpus from the shared data, if present.
fn real_tokenizer_and_corpus() -> Option<(CodeTokenizer, std::path::PathBuf)> {
    let vocab = shared_file("roberta-base-tokenizer/vocab.json")?;
    let merges = shared_file("roberta-base-tokenizer/merges.txt")?;
    let corpus = shared_file("c-corpus/nginx.jsonl")?;
    Some((
        CodeTokenizer::from_vocab_and_merges(&vocab, &merges, None).unwrap(),
        corpus,
    ))
}

#[test]
fn roberta_tokenizer_matches_transformers_on_the_nginx_corpus() {
    let Some((tokenizer, corpus)) = real_tokenizer_and_corpus() else {
        return;
    };
    assert_eq!(tokenizer.vocab_size(), 50_265);

    let reference = flate2::read::GzDecoder::new(
        std::fs::File::open(fixture("nginx-roberta-ids.jsonl.gz")).unwrap(),
    );
    let expected: Vec<(u64, Vec<u32>)> = BufReader::new(reference)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            let ids = v["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            (v["idx"].as_u64().unwrap(), ids)
        })
        .collect();

    let functions: Vec<(u64, String)> = BufReader::new(std::fs::File::open(&corpus).unwrap())
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            (
                v["idx"].as_u64().unwrap(),
                v["func"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(functions.len(), 600);
    assert_eq!(expected.len(), functions.len());

    let mut longer_than_512 = 0;
    for ((idx, code), (ref_idx, ref_ids)) in functions.iter().zip(&expected) {
        assert_eq!(idx, ref_idx);
        let ids = tokenizer.encode_untruncated(code).unwrap();
        if ids != *ref_ids {
            let first = ids
                .iter()
                .zip(ref_ids)
                .position(|(a, b)| a != b)
                .unwrap_or(ids.len().min(ref_ids.len()));
            panic!(
                "function idx {idx}: ids differ from transformers at position {first} (ours {} tokens, transformers {})",
                ids.len(),
                ref_ids.len()
            );
        }
        let truncated = tokenizer.encode(code, 512).unwrap();
        assert_eq!(truncated.input_ids.len(), ref_ids.len().min(512));
        longer_than_512 += usize::from(truncated.truncated());
    }
    // The corpus README: about half the functions exceed the model's limit.
    assert!(longer_than_512 > 200, "{longer_than_512}");
}

/// Cutting long inputs before tokenizing must give exactly the ids of tokenizing all
/// of it and truncating: checked at several limits over the whole corpus.
#[test]
fn prefix_cut_gives_the_ids_of_full_tokenization() {
    let Some((tokenizer, corpus)) = real_tokenizer_and_corpus() else {
        return;
    };
    let mut cut_inputs = 0;
    for line in BufReader::new(std::fs::File::open(&corpus).unwrap()).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        let code = v["func"].as_str().unwrap();
        let full = tokenizer.encode_untruncated(code).unwrap();
        for max_tokens in [3, 16, 64] {
            let encoded = tokenizer.encode(code, max_tokens).unwrap();
            let mut expected = full.clone();
            if expected.len() > max_tokens {
                expected.truncate(max_tokens - 1);
                expected.push(2);
            }
            assert_eq!(
                encoded.input_ids, expected,
                "idx {} at max_tokens {max_tokens}",
                v["idx"]
            );
            assert_eq!(encoded.truncated(), full.len() > max_tokens);
            cut_inputs += usize::from(encoded.untruncated_length.is_none());
        }
    }
    assert!(
        cut_inputs > 500,
        "the prefix cut was exercised only {cut_inputs} times"
    );
}
