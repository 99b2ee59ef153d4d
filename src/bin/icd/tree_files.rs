//! Files that a scanned tree supplies: `.icd.toml`, `.icd-triage.toml`, and the
//! calibration file `.icd.toml` names. A pull request can plant a link
//! `.icd.toml -> /proc/self/environ`; were it followed, and a parse error quoted the
//! line it failed on, the runner's environment (tokens included) would be printed
//! into the CI log. So a file the tree supplies is read only where it resolves inside
//! the directory it was found in, and its parse errors give a line and column, never
//! the text. A file named on the command line is the user's own and is read wherever
//! it is.

use std::path::Path;

use crate::Failure;

/// Refuses `path`, found in or named by the tree at `dir`, where it resolves outside
/// `dir` (through a link, or a `..` or absolute path). `flag` names the way to read
/// such a file on purpose.
pub fn confine(path: &Path, dir: &Path, kind: &str, flag: &str) -> Result<(), Failure> {
    let canonical =
        |p: &Path| std::fs::canonicalize(p).map_err(|e| Failure(format!("{}: {e}", p.display())));
    let (resolved, top) = (canonical(path)?, canonical(dir)?);
    if resolved.starts_with(&top) {
        return Ok(());
    }
    Err(Failure(format!(
        "{}: the {kind} leads outside {} (through a link, `..` or an absolute path), and a {kind} from the scanned tree is read only inside it; {flag} reads a file elsewhere",
        path.display(),
        dir.display()
    )))
}

/// A TOML file's fields, read from its text; an error is [`toml_error`]'s, with the
/// key at fault.
pub fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, Failure> {
    let document = toml::Deserializer::parse(text).map_err(|e| toml_error(path, text, &e, None))?;
    serde_path_to_error::deserialize(document).map_err(|e| {
        let key = e.path().to_string();
        toml_error(path, text, e.inner(), (key != ".").then_some(&key))
    })
}

/// A TOML error as `path:line:column: message` (with the key at fault, where known),
/// without the excerpt of the file that toml's own message carries.
pub fn toml_error(path: &Path, text: &str, e: &toml::de::Error, key: Option<&str>) -> Failure {
    let at = match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = 1 + before.matches('\n').count();
            let column = 1 + before.len() - before.rfind('\n').map_or(0, |n| n + 1);
            format!("{}:{line}:{column}", path.display())
        }
        None => path.display().to_string(),
    };
    let key = key.map_or(String::new(), |k| format!("`{k}`: "));
    Failure(format!("{at}: {key}{}", e.message().trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_give_the_place_not_the_text() {
        let text = "a = 1\nSECRET_TOKEN=abc123 xyz\n";
        let message = parse_toml::<toml::Table>(Path::new("x.toml"), text)
            .err()
            .unwrap()
            .0;
        assert!(message.starts_with("x.toml:2:"), "{message}");
        assert!(!message.contains("abc123"), "{message}");
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Fields {
            cache: Option<bool>,
        }
        let message = parse_toml::<Fields>(Path::new("x.toml"), "\ncache = \"no\"\n")
            .err()
            .unwrap()
            .0;
        assert!(
            message.starts_with("x.toml:2:9: `cache`: invalid type: string"),
            "{message}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn links_out_of_the_directory_are_refused() {
        let top = tempfile::tempdir().unwrap();
        let tree = top.path().join("tree");
        let secret = top.path().join("secret");
        std::fs::write(&secret, "x").unwrap();
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("sub/inside.toml"), "x").unwrap();
        let link = tree.join(".icd.toml");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let error = confine(&link, &tree, "settings file", "--config FILE")
            .err()
            .unwrap()
            .0;
        assert!(error.contains("leads outside"), "{error}");
        assert!(
            error.ends_with("--config FILE reads a file elsewhere"),
            "{error}"
        );
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("sub/inside.toml", &link).unwrap();
        confine(&link, &tree, "settings file", "--config FILE").unwrap();
        let dotdot = tree.join("sub/../../secret");
        let error = confine(&dotdot, &tree, "calibration file", "--calibration FILE")
            .err()
            .unwrap()
            .0;
        assert!(
            error.contains("the calibration file leads outside"),
            "{error}"
        );
    }
}
