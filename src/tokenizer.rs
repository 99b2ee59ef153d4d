//! RoBERTa's byte-level BPE, built exactly as transformers builds it.
//!
//! With a `tokenizer.json` in the checkpoint, that file is the tokenizer. Otherwise the
//! tokenizer is assembled from `vocab.json` and `merges.txt` the way transformers'
//! `RobertaTokenizer` (a `tokenizers` pipeline) assembles it: BPE with no subword prefix
//! or suffix, a byte-level pre-tokenizer without prefix space, `<s> ... </s>` around
//! the ids, and the five special tokens matched verbatim in the text.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};

/// A token's bytes in the text it was encoded from: `(start, end)`, end exclusive.
pub type ByteSpan = (usize, usize);

/// Token ids for one input, ready for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedInput {
    /// `<s>`, up to `max_tokens - 2` content tokens, `</s>`.
    pub input_ids: Vec<u32>,
    /// Tokens the whole input has, specials included; `None` when the input was so
    /// long that only a prefix of it was tokenized (it is then certainly truncated).
    pub untruncated_length: Option<usize>,
}

impl TokenizedInput {
    /// Whether tokens were cut to fit the model.
    pub fn truncated(&self) -> bool {
        self.untruncated_length
            .is_none_or(|n| n > self.input_ids.len())
    }
}

/// The checkpoint's tokenizer with its truncation limit.
#[derive(Clone)]
pub struct CodeTokenizer {
    inner: Tokenizer,
    bos_id: u32,
    eos_id: u32,
    /// Bytes of the longest vocabulary token, when the pipeline is RoBERTa's byte-level
    /// one (no normalizer): then a long input can be cut before tokenizing, see
    /// [`CodeTokenizer::encode`].
    longest_token_bytes: Option<usize>,
}

impl std::fmt::Debug for CodeTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeTokenizer")
            .field("vocab_size", &self.inner.get_vocab_size(true))
            .finish()
    }
}

/// Bytes of text per token of `max_tokens` past which [`CodeTokenizer::encode`] never
/// tokenizes: 256 KiB for 512 tokens, four times RoBERTa's longest token (128 bytes).
pub const MAX_BYTES_PER_TOKEN: usize = 512;

/// The special tokens of RoBERTa, in the order transformers registers them.
const SPECIAL_TOKENS: [&str; 5] = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"];

impl CodeTokenizer {
    /// Loads the tokenizer of a checkpoint directory: `tokenizer.json` when present,
    /// otherwise `vocab.json` + `merges.txt` (+ `tokenizer_config.json` for the
    /// special tokens' flags, when present).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Self::from_tokenizer_json(&json);
        }
        Self::from_vocab_and_merges(
            &dir.join("vocab.json"),
            &dir.join("merges.txt"),
            Some(&dir.join("tokenizer_config.json")),
        )
    }

    /// Loads a serialized `tokenizers` pipeline. Any truncation or padding saved in it is
    /// dropped: this library truncates and pads itself.
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        let bytes =
            crate::files::read_untrusted(path, crate::files::TOKENIZER_LIMIT, "tokenizer.json")?;
        let mut inner =
            Tokenizer::from_bytes(bytes).map_err(|e| tokenizer_error(path, e.to_string()))?;
        inner
            .with_truncation(None)
            .map_err(|e| tokenizer_error(path, e.to_string()))?;
        inner.with_padding(None);
        Self::finish(inner, path)
    }

    /// Builds RoBERTa's tokenizer from its vocabulary and merges, as transformers does.
    pub fn from_vocab_and_merges(
        vocab: &Path,
        merges: &Path,
        tokenizer_config: Option<&Path>,
    ) -> Result<Self> {
        for (file, kind) in [(vocab, "vocab.json"), (merges, "merges.txt")] {
            if !file.exists() {
                return Err(tokenizer_error(
                    file,
                    "file not found (expected tokenizer.json, or vocab.json and merges.txt)".into(),
                ));
            }
            // Regular and within bounds, before the tokenizers crate reads it by path.
            crate::files::open_untrusted(file, crate::files::TOKENIZER_LIMIT, kind)?;
        }
        let vocab_str = path_str(vocab)?;
        let merges_str = path_str(merges)?;
        let bpe = BPE::from_file(&vocab_str, &merges_str)
            .continuing_subword_prefix(String::new())
            .end_of_word_suffix(String::new())
            .fuse_unk(false)
            .build()
            .map_err(|e| tokenizer_error(vocab, format!("with {}: {e}", merges.display())))?;
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        inner.with_decoder(Some(ByteLevelDecoder::default()));

        let flags = match tokenizer_config {
            Some(path) if path.is_file() => SpecialTokenFlags::from_tokenizer_config(path)?,
            _ => SpecialTokenFlags::default(),
        };
        let mut specials = Vec::new();
        for content in SPECIAL_TOKENS {
            if inner.token_to_id(content).is_none() {
                return Err(tokenizer_error(
                    vocab,
                    format!("the vocabulary has no {content} token"),
                ));
            }
            let (lstrip, rstrip) = flags.get(content);
            specials.push(
                AddedToken::from(content, true)
                    .lstrip(lstrip)
                    .rstrip(rstrip)
                    .normalized(false),
            );
        }
        inner.add_special_tokens(&specials);
        let cls = inner.token_to_id("<s>").expect("checked above");
        let sep = inner.token_to_id("</s>").expect("checked above");
        inner.with_post_processor(Some(
            RobertaProcessing::new(("</s>".into(), sep), ("<s>".into(), cls))
                .trim_offsets(true)
                .add_prefix_space(false),
        ));
        Self::finish(inner, vocab)
    }

    fn finish(inner: Tokenizer, path: &Path) -> Result<Self> {
        let bos_id = inner
            .token_to_id("<s>")
            .ok_or_else(|| tokenizer_error(path, "the vocabulary has no <s> token".into()))?;
        let eos_id = inner
            .token_to_id("</s>")
            .ok_or_else(|| tokenizer_error(path, "the vocabulary has no </s> token".into()))?;
        let byte_level = inner.get_normalizer().is_none()
            && serde_json::to_value(inner.get_pre_tokenizer())
                .ok()
                .is_some_and(|v| v["type"] == "ByteLevel" && v["use_regex"] == true);
        // Byte-level tokens spell one byte per character.
        let longest_token_bytes = byte_level
            .then(|| {
                inner
                    .get_vocab(true)
                    .keys()
                    .map(|t| t.chars().count())
                    .max()
            })
            .flatten();
        Ok(Self {
            inner,
            bos_id,
            eos_id,
            longest_token_bytes,
        })
    }

    /// Tokenizes `text` as `tokenizer(text, truncation=True, max_length=max_tokens)`
    /// does: `<s>`, the first `max_tokens - 2` tokens, `</s>`.
    ///
    /// Time and memory are bounded by `max_tokens`, not by the input: a long input is
    /// cut before tokenizing, at a point where the ids before it cannot change (see
    /// [`safe_cut`]) and far enough in to hold more than `max_tokens` tokens.
    ///
    /// Where no such point exists within the first `max_tokens * MAX_BYTES_PER_TOKEN`
    /// bytes (text without whitespace there, or a pipeline other than RoBERTa's
    /// byte-level one), only those bytes reach the tokenizer, so that no input and no
    /// `tokenizer.json` makes tokenizing cost more; then the last ids before the cut
    /// may differ from those of the whole text, which real code (with whitespace every
    /// few bytes) never meets.
    pub fn encode(&self, text: &str, max_tokens: usize) -> Result<TokenizedInput> {
        Ok(self.encode_spanned(text, max_tokens, false)?.0)
    }

    /// [`CodeTokenizer::encode`], with each id's bytes in `text`: `(0, 0)` for the
    /// `<s>` and `</s>` that frame the input (and the `</s>` that ends a cut one).
    pub fn encode_with_spans(
        &self,
        text: &str,
        max_tokens: usize,
    ) -> Result<(TokenizedInput, Vec<ByteSpan>)> {
        self.encode_spanned(text, max_tokens, true)
    }

    /// The ids (and, with `spans`, their bytes) of `text` as [`CodeTokenizer::encode`]
    /// gives them.
    fn encode_spanned(
        &self,
        text: &str,
        max_tokens: usize,
        spans: bool,
    ) -> Result<(TokenizedInput, Vec<ByteSpan>)> {
        let max_tokens = max_tokens.max(2);
        let encode = |text: &str| -> Result<(Vec<u32>, Vec<ByteSpan>)> {
            let encoding = self.encoding(text, true)?;
            let offsets = if spans {
                encoding.get_offsets().to_vec()
            } else {
                Vec::new()
            };
            Ok((encoding.get_ids().to_vec(), offsets))
        };
        let truncated = |(ids, offsets): (Vec<u32>, Vec<ByteSpan>)| {
            let offsets = match spans {
                true => self.truncate_spans(offsets, max_tokens),
                false => offsets,
            };
            let input = TokenizedInput {
                input_ids: self.truncate(ids, max_tokens),
                untruncated_length: None,
            };
            (input, offsets)
        };
        let bound = text.floor_char_boundary(max_tokens.saturating_mul(MAX_BYTES_PER_TOKEN));
        if let Some(cut) = self
            .longest_token_bytes
            .and_then(|longest| safe_cut(&text[..bound], (max_tokens + 1) * longest))
        {
            let encoded = encode(&text[..cut])?;
            // Each token spells at most `longest` bytes, so the prefix holds more than
            // max_tokens tokens; check rather than trust it.
            if encoded.0.len() > max_tokens {
                return Ok(truncated(encoded));
            }
        }
        if bound < text.len() {
            return Ok(truncated(encode(&text[..bound])?));
        }
        let (ids, offsets) = encode(text)?;
        let untruncated_length = ids.len();
        let (mut input, offsets) = truncated((ids, offsets));
        input.untruncated_length = Some(untruncated_length);
        Ok((input, offsets))
    }

    /// The spans of ids cut by [`CodeTokenizer::truncate`]: the first
    /// `max_tokens - 1`, then the `</s>`'s, empty.
    fn truncate_spans(&self, mut spans: Vec<ByteSpan>, max_tokens: usize) -> Vec<ByteSpan> {
        if spans.len() > max_tokens {
            spans.truncate(max_tokens - 1);
            spans.push((0, 0));
        }
        spans
    }

    /// `ids` cut to `max_tokens` as transformers truncates: the first
    /// `max_tokens - 1`, then `</s>`.
    fn truncate(&self, mut ids: Vec<u32>, max_tokens: usize) -> Vec<u32> {
        if ids.len() > max_tokens {
            ids.truncate(max_tokens - 1);
            ids.push(self.eos_id);
        }
        ids
    }

    /// All ids of `text` with `<s>` and `</s>`, however long.
    pub fn encode_untruncated(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.encoding(text, true)?.get_ids().to_vec())
    }

    /// Content tokens of all of `text` (no `<s>`/`</s>`) with the byte range of `text`
    /// each one spells, for classifying overlapping windows of a long input.
    pub fn encode_with_offsets(&self, text: &str) -> Result<(Vec<u32>, Vec<ByteSpan>)> {
        let encoding = self.encoding(text, false)?;
        Ok((encoding.get_ids().to_vec(), encoding.get_offsets().to_vec()))
    }

    /// The tokenizer's encoding of all of `text`, with `<s>` and `</s>` where
    /// `specials`.
    fn encoding(&self, text: &str, specials: bool) -> Result<tokenizers::Encoding> {
        self.inner
            .encode(text, specials)
            .map_err(|e| Error::Inference(format!("tokenizer: {e}")))
    }

    /// The id of `<s>`, which starts every input.
    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    /// The id of `</s>`, which ends every input.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Size of the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The largest token id the tokenizer can give, with the token that has it
    /// (added tokens included); `None` for an empty vocabulary.
    pub fn max_id(&self) -> Option<(u32, String)> {
        self.inner
            .get_vocab(true)
            .into_iter()
            .max_by_key(|(token, id)| (*id, std::cmp::Reverse(token.clone())))
            .map(|(token, id)| (id, token))
    }

    /// The id of `token`, if the vocabulary has it.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

/// The first byte offset at or after `min_bytes` where `text` can be cut without
/// changing any token before the cut: an ASCII whitespace byte right after a
/// non-whitespace character. RoBERTa's pre-tokenizer splits the text into pieces
/// (`'s`, ` ?letters`, ` ?digits`, ` ?other symbols`, whitespace runs) none of which
/// runs from a non-whitespace character into the whitespace after it, and BPE works
/// within a piece; the special tokens hold no whitespace. So every piece, and every
/// token, before that point is the same in the prefix as in the whole text. `None`
/// when the text is shorter than `min_bytes` or has no such point.
pub fn safe_cut(text: &str, min_bytes: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.len() <= min_bytes.saturating_add(1) {
        return None;
    }
    (min_bytes.max(1)..bytes.len()).find(|&p| {
        bytes[p].is_ascii_whitespace()
            && text[..p]
                .chars()
                .next_back()
                .is_some_and(|c| !c.is_whitespace())
    })
}

/// `lstrip`/`rstrip` of each special token, as `tokenizer_config.json` declares them
/// (transformers honours them; current transformers writes both false).
#[derive(Default)]
struct SpecialTokenFlags {
    flags: Vec<(String, bool, bool)>,
}

impl SpecialTokenFlags {
    fn from_tokenizer_config(path: &Path) -> Result<Self> {
        let text = crate::files::read_untrusted_text(
            path,
            crate::files::CONFIG_LIMIT,
            "tokenizer_config.json",
        )?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| tokenizer_error(path, e.to_string()))?;
        let mut flags = Vec::new();
        let mut take = |entry: &Value| {
            if let Some(content) = entry.get("content").and_then(Value::as_str) {
                let lstrip = entry
                    .get("lstrip")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let rstrip = entry
                    .get("rstrip")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                flags.push((content.to_owned(), lstrip, rstrip));
            }
        };
        if let Some(decoder) = value.get("added_tokens_decoder").and_then(Value::as_object) {
            decoder.values().for_each(&mut take);
        }
        for key in [
            "bos_token",
            "eos_token",
            "unk_token",
            "sep_token",
            "pad_token",
            "cls_token",
            "mask_token",
        ] {
            if let Some(entry) = value.get(key).filter(|v| v.is_object()) {
                take(entry);
            }
        }
        Ok(Self { flags })
    }

    fn get(&self, content: &str) -> (bool, bool) {
        self.flags
            .iter()
            .rev()
            .find(|(c, _, _)| c == content)
            .map(|&(_, l, r)| (l, r))
            .unwrap_or((false, false))
    }
}

fn path_str(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| tokenizer_error(path, "the path is not valid UTF-8".into()))
}

fn tokenizer_error(path: &Path, message: String) -> Error {
    Error::Tokenizer {
        path: PathBuf::from(path),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_cut_lands_after_a_word_before_whitespace() {
        assert_eq!(safe_cut("abc def ghi", 1), Some(3));
        assert_eq!(safe_cut("abc def ghi", 4), Some(7));
        // Whitespace runs are skipped until a word ends.
        assert_eq!(safe_cut("a    bc\n", 2), Some(7));
        assert_eq!(safe_cut("short", 10), None);
        assert_eq!(safe_cut("nowhitespaceatall", 3), None);
        // A multibyte non-whitespace character before the cut is fine.
        assert_eq!(safe_cut("x \u{e9}\u{e9} y", 3), Some(6));
    }
}
