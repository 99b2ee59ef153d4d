//! `icd scan`'s prediction cache, as a CI job meets it: a rescan of an unchanged tree
//! makes no model call and gives the same report byte for byte; a change to a
//! function, the weights or a setting that decides results is classified anew; two
//! scans at once share one cache without losing entries; a damaged cache is made anew
//! with a warning; an unusable one is passed over, never trusted.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;

/// `icd --model MODEL ARGS...` run in `root` with the cache in `cache`.
fn icd(root: &Path, model: &Path, cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_icd"))
        .current_dir(root)
        .arg("--model")
        .arg(model)
        .args(args)
        .env("ICD_CACHE_DIR", cache)
        .env_remove("ICD_CACHE_MAX_ENTRIES")
        .env_remove("BURN_DEVICE")
        .output()
        .unwrap()
}

/// `icd scan . --threshold 0 --format jsonl ARGS...`: must run (exit 0 or 1); its
/// report and its stderr.
fn scan(root: &Path, model: &Path, cache: &Path, args: &[&str]) -> (String, String) {
    let mut all = vec!["scan", ".", "--threshold", "0", "--format", "jsonl"];
    all.extend_from_slice(args);
    let out = icd(root, model, cache, &all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// The "N of M functions from the prediction cache" counts on stderr.
fn from_cache(stderr: &str) -> (usize, usize) {
    let line = stderr
        .lines()
        .find(|l| l.contains("functions from the prediction cache"))
        .unwrap_or_else(|| panic!("no cache line in: {stderr}"));
    let words: Vec<&str> = line.trim_start_matches("icd: ").split(' ').collect();
    (words[0].parse().unwrap(), words[2].parse().unwrap())
}

fn not_loaded(stderr: &str) -> bool {
    stderr.contains("; the model was not loaded")
}

/// A tree of `n` distinct functions in two files.
fn tree(n: usize) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = String::new();
    let mut b = String::new();
    for i in 0..n {
        let f = format!(
            "int f{i}(char *s, int n)\n{{\n    char b[{}];\n    memcpy(b, s, n + {i});\n    return b[0];\n}}\n\n",
            8 + i
        );
        if i % 2 == 0 {
            a += &f
        } else {
            b += &f
        }
    }
    std::fs::write(tmp.path().join("a.c"), a).unwrap();
    std::fs::write(tmp.path().join("b.c"), b).unwrap();
    tmp
}

#[test]
fn a_rescan_of_an_unchanged_tree_makes_no_model_call_and_gives_the_same_report() {
    let model = fixture("roberta-2-labels");
    let src = tree(6);
    let cache = tempfile::tempdir().unwrap();
    for args in [
        &[][..],
        &["--explain", "--top-lines", "2"],
        &["--window", "--stride", "3"],
        &["--window", "--stride", "3", "--explain"],
    ] {
        let (first, err) = scan(src.path(), &model, cache.path(), args);
        assert_eq!(from_cache(&err), (0, 6), "{args:?}: {err}");
        let (second, err) = scan(src.path(), &model, cache.path(), args);
        assert_eq!(from_cache(&err), (6, 6), "{args:?}: {err}");
        assert!(not_loaded(&err), "{err}");
        assert_eq!(first, second, "{args:?}");
        // And the same as a scan without the cache.
        let (uncached, err) = scan(
            src.path(),
            &model,
            cache.path(),
            &[args, &["--no-cache"]].concat(),
        );
        assert!(!err.contains("prediction cache"), "{err}");
        assert_eq!(first, uncached, "{args:?}");
    }
    // SARIF too, byte for byte.
    let sarif = |cache_flag: &[&str]| {
        let mut args = vec!["scan", ".", "--threshold", "0", "--format", "sarif"];
        args.extend_from_slice(cache_flag);
        let out = icd(src.path(), &model, cache.path(), &args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(log["runs"][0]["results"].as_array().unwrap().len(), 6);
        out.stdout
    };
    assert_eq!(sarif(&[]), sarif(&["--no-cache"]));

    // One edited function is the one classified again.
    let a = src.path().join("a.c");
    let text = std::fs::read_to_string(&a)
        .unwrap()
        .replace("n + 0", "n + 100");
    std::fs::write(&a, text).unwrap();
    let (_, err) = scan(src.path(), &model, cache.path(), &[]);
    assert_eq!(from_cache(&err), (5, 6), "{err}");
    assert!(!not_loaded(&err));
}

#[test]
fn settings_and_weights_that_change_results_are_not_served_from_the_cache() {
    let checkpoint = copy_fixture("roberta-2-labels");
    let model = checkpoint.path();
    let src = tree(4);
    let cache = tempfile::tempdir().unwrap();
    let (plain, err) = scan(src.path(), model, cache.path(), &[]);
    assert_eq!(from_cache(&err), (0, 4));
    // Options that change results; `--precision` and `--collapse-whitespace` are
    // global, given after `scan` here.
    for args in [
        &["--precision", "bf16"][..],
        &["--collapse-whitespace"],
        &["--explain"],
        &["--window"],
    ] {
        let (_, err) = scan(src.path(), model, cache.path(), args);
        assert_eq!(from_cache(&err), (0, 4), "{args:?}: {err}");
    }
    // The batch size does not change results, so it shares them.
    let (report, err) = scan(src.path(), model, cache.path(), &["--batch-size", "3"]);
    assert_eq!(from_cache(&err), (4, 4), "{err}");
    assert_eq!(report, plain);

    // The same bytes written again: remembered digest or not, the same model.
    let weights = model.join("model.safetensors");
    std::fs::write(&weights, std::fs::read(&weights).unwrap()).unwrap();
    let (_, err) = scan(src.path(), model, cache.path(), &[]);
    assert_eq!(from_cache(&err), (4, 4), "{err}");
    // Other weights (the same model's .bin, read once the safetensors are gone).
    std::fs::remove_file(&weights).unwrap();
    let (_, err) = scan(src.path(), model, cache.path(), &[]);
    assert_eq!(from_cache(&err), (0, 4), "{err}");
    // Another tokenizer file.
    let vocab = model.join("vocab.json");
    let mut text = std::fs::read_to_string(&vocab).unwrap();
    text.insert(text.len() - 1, ' ');
    std::fs::write(&vocab, text).unwrap();
    let (_, err) = scan(src.path(), model, cache.path(), &[]);
    assert_eq!(from_cache(&err), (0, 4), "{err}");
}

#[test]
fn no_cache_flag_and_setting_leave_the_cache_alone() {
    let model = fixture("roberta-2-labels");
    let src = tree(2);
    let cache = tempfile::tempdir().unwrap();
    let (_, err) = scan(src.path(), &model, cache.path(), &["--no-cache"]);
    assert!(!err.contains("prediction cache"), "{err}");
    assert!(!cache.path().join("predictions.sqlite3").exists());
    std::fs::write(src.path().join(".icd.toml"), "cache = false\n").unwrap();
    let (_, err) = scan(src.path(), &model, cache.path(), &[]);
    assert!(!err.contains("prediction cache"), "{err}");
    assert!(!cache.path().join("predictions.sqlite3").exists());
    std::fs::write(src.path().join(".icd.toml"), "cache = \"no\"\n").unwrap();
    let out = icd(src.path(), &model, cache.path(), &["scan", "."]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cache"));
}

#[test]
fn two_scans_at_once_share_one_cache_and_lose_nothing() {
    let model = fixture("roberta-2-labels");
    let cache = tempfile::tempdir().unwrap();
    let trees = [tree(300), tree(301)];
    let spawn = |root: &Path| {
        Command::new(env!("CARGO_BIN_EXE_icd"))
            .current_dir(root)
            .arg("--model")
            .arg(&model)
            .args([
                "--batch-size",
                "1",
                "scan",
                ".",
                "--threshold",
                "0",
                "--format",
                "jsonl",
            ])
            .env("ICD_CACHE_DIR", cache.path())
            .env_remove("ICD_CACHE_MAX_ENTRIES")
            .env_remove("BURN_DEVICE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    for round in 0..2 {
        let children: Vec<_> = trees.iter().map(|t| spawn(t.path())).collect();
        let outputs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        for out in &outputs {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(matches!(out.status.code(), Some(0 | 1)), "{err}");
            assert!(!err.contains("warning"), "{err}");
        }
        if round == 1 {
            // Both trees hold f0..f299: the second has one more function.
            for (out, n) in outputs.iter().zip([300, 301]) {
                let err = String::from_utf8_lossy(&out.stderr);
                assert_eq!(from_cache(&err), (n, n), "{err}");
            }
        }
    }
    let out = icd(cache.path(), &model, cache.path(), &["cache", "stats"]);
    let stats = String::from_utf8(out.stdout).unwrap();
    assert!(stats.contains("\nentries: 301\n"), "{stats}");
}

#[test]
fn a_truncated_cache_is_made_anew_with_a_warning() {
    let model = fixture("roberta-2-labels");
    let src = tree(30);
    let cache = tempfile::tempdir().unwrap();
    let (first, _) = scan(src.path(), &model, cache.path(), &[]);
    let file = cache.path().join("predictions.sqlite3");
    let length = std::fs::metadata(&file).unwrap().len();
    assert!(length > 8192, "{length}");
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(length / 2).unwrap();
    drop(f);
    let (second, err) = scan(src.path(), &model, cache.path(), &[]);
    assert!(
        err.contains("warning: the prediction cache") && err.contains("was damaged"),
        "{err}"
    );
    assert_eq!(from_cache(&err), (0, 30), "{err}");
    assert_eq!(first, second);
    let (_, err) = scan(src.path(), &model, cache.path(), &[]);
    assert_eq!(from_cache(&err), (30, 30), "{err}");
    assert!(!err.contains("warning"), "{err}");

    // Garbage in place of the file: the same.
    std::fs::write(&file, vec![0xa5; 50_000]).unwrap();
    let (third, err) = scan(src.path(), &model, cache.path(), &[]);
    assert!(err.contains("was damaged"), "{err}");
    assert_eq!(first, third);
}

#[test]
fn an_unusable_cache_directory_is_passed_over_with_a_warning() {
    let model = fixture("roberta-2-labels");
    let src = tree(2);
    let not_a_dir = tempfile::NamedTempFile::new().unwrap();
    let (report, err) = scan(src.path(), &model, not_a_dir.path(), &[]);
    assert!(
        err.contains("warning") && err.contains("classifying without the prediction cache"),
        "{err}"
    );
    assert_eq!(report.lines().count(), 2);
}

#[test]
fn the_cache_is_bounded_and_stats_and_clear_say_what_it_holds() {
    let model = fixture("roberta-2-labels");
    let src = tree(12);
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_icd"))
        .current_dir(src.path())
        .arg("--model")
        .arg(&model)
        .args(["scan", ".", "--format", "jsonl"])
        .env("ICD_CACHE_DIR", cache.path())
        .env("ICD_CACHE_MAX_ENTRIES", "5")
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)));
    let stats = icd(src.path(), &model, cache.path(), &["cache", "stats"]);
    let text = String::from_utf8(stats.stdout).unwrap();
    assert!(text.contains("\nentries: 5\n"), "{text}");
    assert!(text.contains("\nmodels: 1\n"), "{text}");
    assert!(text.contains("predictions.sqlite3"), "{text}");
    let clear = icd(src.path(), &model, cache.path(), &["cache", "clear"]);
    assert!(String::from_utf8(clear.stdout)
        .unwrap()
        .starts_with("removed 5 entries"));
    let stats = icd(src.path(), &model, cache.path(), &["cache", "stats"]);
    assert!(String::from_utf8(stats.stdout)
        .unwrap()
        .contains("\nentries: 0\n"));

    let bad = Command::new(env!("CARGO_BIN_EXE_icd"))
        .current_dir(src.path())
        .arg("--model")
        .arg(&model)
        .args(["scan", "."])
        .env("ICD_CACHE_DIR", cache.path())
        .env("ICD_CACHE_MAX_ENTRIES", "lots")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ICD_CACHE_MAX_ENTRIES"));
}

/// The cache's database, opened to plant things in it.
fn database(cache: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(cache.join("predictions.sqlite3")).unwrap()
}

#[test]
fn entries_that_do_not_fit_their_function_are_misses_not_reports() {
    let model = fixture("roberta-2-labels");
    let src = tree(4);
    let cache = tempfile::tempdir().unwrap();
    for (args, planted) in [
        // A window past the function's end, a line past its last, logits for another
        // model, a verdict that disagrees with its logits is read off the logits again.
        (
            &["--window"][..],
            r#"{"logits":[0.1,0.2],"tokens":20,"truncated":false,"window":[{"start":0,"end":100000},2],"lines":[]}"#,
        ),
        (
            &["--explain"],
            r#"{"logits":[0.1,0.2],"tokens":20,"truncated":false,"window":null,"lines":[{"line":9999,"score":0.5}]}"#,
        ),
        (
            &[],
            r#"{"logits":[0.1,0.2,0.3],"tokens":20,"truncated":false,"window":null,"lines":[]}"#,
        ),
        (
            &[],
            r#"{"logits":[0.1],"tokens":100000,"truncated":false,"window":null,"lines":[]}"#,
        ),
        (&[], r#"{"not":"an entry"}"#),
    ] {
        let (expected, _) = scan(
            src.path(),
            &model,
            cache.path(),
            &[args, &["--no-cache"]].concat(),
        );
        let (_, err) = scan(src.path(), &model, cache.path(), args);
        database(cache.path())
            .execute("UPDATE predictions SET value = ?1", [planted.as_bytes()])
            .unwrap();
        let (report, err2) = scan(src.path(), &model, cache.path(), args);
        assert_eq!(from_cache(&err2), (0, 4), "{args:?} {planted}: {err}{err2}");
        assert_eq!(report, expected, "{args:?} {planted}");
        // Written anew: the next scan is served.
        let (again, err3) = scan(src.path(), &model, cache.path(), args);
        assert_eq!(from_cache(&err3), (4, 4), "{err3}");
        assert_eq!(again, expected);
    }
    // A verdict is the logits': an entry whose logits say otherwise is read as they say.
    let (plain, _) = scan(src.path(), &model, cache.path(), &[]);
    database(cache.path())
        .execute(
            "UPDATE predictions SET value = ?1",
            [
                r#"{"logits":[-5.0,5.0],"tokens":20,"truncated":false,"window":null,"lines":[]}"#
                    .as_bytes(),
            ],
        )
        .unwrap();
    let (planted, err) = scan(src.path(), &model, cache.path(), &[]);
    assert_eq!(from_cache(&err), (4, 4), "{err}");
    assert_ne!(planted, plain);
    for line in planted.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["label"], 1);
        assert!(row["insecure_probability"].as_f64().unwrap() > 0.99);
    }
}

#[test]
fn a_foreign_layout_or_a_link_in_the_caches_place_is_replaced_never_written_into() {
    let model = fixture("roberta-2-labels");
    let src = tree(3);
    let (expected, _) = scan(
        src.path(),
        &model,
        Path::new("/nonexistent"),
        &["--no-cache"],
    );

    // Another program's database (or another version's layout).
    let cache = tempfile::tempdir().unwrap();
    let foreign = database(cache.path());
    foreign
        .execute_batch("CREATE TABLE predictions (key TEXT, value TEXT); INSERT INTO predictions VALUES ('a', 'b');")
        .unwrap();
    drop(foreign);
    let (report, err) = scan(src.path(), &model, cache.path(), &[]);
    assert!(
        err.contains("was damaged") && err.contains("layout"),
        "{err}"
    );
    assert_eq!(report, expected);
    let (_, err) = scan(src.path(), &model, cache.path(), &[]);
    assert_eq!(from_cache(&err), (3, 3), "{err}");

    // Another program's database that happens to have this layout's user_version.
    let cache = tempfile::tempdir().unwrap();
    database(cache.path())
        .execute_batch("CREATE TABLE notes (body TEXT); PRAGMA user_version = 1;")
        .unwrap();
    let (report, err) = scan(src.path(), &model, cache.path(), &[]);
    assert!(
        err.contains("was damaged") && err.contains("application_id"),
        "{err}"
    );
    assert_eq!(report, expected);

    // This version's cache with a trigger planted in it, one that would rewrite every
    // result stored from then on: the file is made anew, the trigger never runs.
    let cache = tempfile::tempdir().unwrap();
    scan(src.path(), &model, cache.path(), &[]);
    database(cache.path())
        .execute_batch(
            "DELETE FROM predictions;
             CREATE TRIGGER rewrite AFTER INSERT ON predictions
             BEGIN UPDATE predictions SET value = x'00' WHERE key = new.key; END;",
        )
        .unwrap();
    let (report, err) = scan(src.path(), &model, cache.path(), &[]);
    assert!(
        err.contains("was damaged") && err.contains("trigger rewrite"),
        "{err}"
    );
    assert_eq!(report, expected);
    let (report, err) = scan(src.path(), &model, cache.path(), &[]);
    assert_eq!(from_cache(&err), (3, 3), "{err}");
    assert_eq!(report, expected);

    // Links in the place of the lock file and of the cache file are never followed.
    let cache = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("created-through-a-link");
    std::os::unix::fs::symlink(&target, cache.path().join("predictions.lock")).unwrap();
    let (report, _) = scan(src.path(), &model, cache.path(), &[]);
    assert_eq!(report, expected);
    assert!(!target.exists(), "the lock file's link was followed");

    // A link to someone else's file: the link is replaced, the file left as it was.
    let cache = tempfile::tempdir().unwrap();
    let precious = cache.path().join("precious.txt");
    std::fs::write(&precious, "").unwrap();
    std::os::unix::fs::symlink(&precious, cache.path().join("predictions.sqlite3")).unwrap();
    let (report, err) = scan(src.path(), &model, cache.path(), &[]);
    assert!(
        err.contains("was damaged") && err.contains("not a regular file"),
        "{err}"
    );
    assert_eq!(report, expected);
    assert_eq!(std::fs::read(&precious).unwrap(), b"");
    assert!(
        std::fs::symlink_metadata(cache.path().join("predictions.sqlite3"))
            .unwrap()
            .file_type()
            .is_file()
    );
}

#[test]
fn options_the_model_would_refuse_are_refused_with_a_warm_cache() {
    let model = fixture("roberta-2-labels");
    let src = tree(2);
    let cache = tempfile::tempdir().unwrap();
    scan(src.path(), &model, cache.path(), &[]);
    let out = icd(
        src.path(),
        &model,
        cache.path(),
        &["--batch-size", "0", "scan", "."],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("batch_size"));
}

#[test]
fn the_librarys_cached_predictions_and_the_scans_share_entries() {
    use insecure_code_detector::cache::PredictionCache;
    use insecure_code_detector::scan::{find_functions_under, TreeOptions};
    use insecure_code_detector::Detector;

    let model = fixture("roberta-2-labels");
    let src = tree(6);
    let cache = tempfile::tempdir().unwrap();
    let found = find_functions_under(&[src.path().to_path_buf()], &TreeOptions::default(), None)
        .unwrap();
    let codes: Vec<&str> = found.functions.iter().map(|(_, f)| f.code.as_str()).collect();
    let builder = Detector::builder(&model);
    let detector = builder.clone().build().unwrap();
    let expected = detector.predict_batch(&codes).unwrap();

    // The library keeps four; the scan finds them and classifies the other two.
    let (mut store, _) = PredictionCache::open(cache.path(), 1000).unwrap();
    let key = store.model_key(&builder).unwrap();
    let (first, classified) = store.predict_batch(&key, &detector, &codes[..4]).unwrap();
    assert_eq!((first.as_slice(), classified), (&expected[..4], 4));
    drop(store);
    let (_, err) = scan(src.path(), &model, cache.path(), &[]);
    assert_eq!(from_cache(&err), (4, 6), "{err}");

    // The library finds all six, equal to the model's, bit for bit.
    let (mut store, _) = PredictionCache::open(cache.path(), 1000).unwrap();
    let (again, classified) = store.predict_batch(&key, &detector, &codes).unwrap();
    assert_eq!(classified, 0);
    for (a, e) in again.iter().zip(&expected) {
        assert_eq!(a.logits, e.logits);
        assert_eq!(a.insecure_probability.to_bits(), e.insecure_probability.to_bits());
        assert_eq!((a.label, a.tokens, a.truncated), (e.label, e.tokens, e.truncated));
    }
}
