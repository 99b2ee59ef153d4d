//! `icd lsp`: a Language Server on stdin and stdout. On open and save of a C or C++
//! file it publishes a diagnostic per finding (the function's range, its probability,
//! the top lines as related information) and offers a code action that inserts an
//! `icd: ignore` comment. Results come through the prediction cache, so that an
//! unchanged function costs no model call; the model loads once, in the background,
//! after `initialize` is answered, and documents opened before it is ready are
//! analyzed when it is.

mod diagnostics;
mod transport;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crossbeam_channel::{select, Receiver};
use insecure_code_detector::calibration::Calibration;
use insecure_code_detector::files::path_text;
use insecure_code_detector::scan::Exclude;
use insecure_code_detector::scan::{find_functions, FunctionSpan, Language};
use insecure_code_detector::{Detector, DetectorBuilder, RobertaConfig};
use lsp_server::{Connection, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, DidSaveTextDocument, Exit,
    LogMessage, Notification as _, PublishDiagnostics, ShowMessage,
};
use lsp_types::request::{CodeActionRequest, Request as _};
use lsp_types::{
    CodeActionProviderCapability, InitializeParams, MessageType, SaveOptions, ServerCapabilities,
    ServerInfo, TextDocumentSyncCapability, TextDocumentSyncKind, TextDocumentSyncOptions,
    TextDocumentSyncSaveOptions, Uri,
};

use crate::classification::{classify_functions, Classified, ClassifyMode};
use crate::detector::{build_detector, detector_builder};
use crate::flags::{LspArgs, ModelArgs};
use crate::report::{Finding, ScanReport};
use crate::scan_cache::ScanCache;
use crate::settings::{Excludes, Settings};
use crate::triage::{self, Triage};
use crate::Failure;

/// What the background load gives: the detector and the prediction cache.
type Loaded = Result<(Detector, Option<ScanCache>), Failure>;

/// A document the client has open.
struct Document {
    path: PathBuf,
    language: Language,
    text: String,
}

/// The server's state.
struct Server<'a> {
    connection: &'a Connection,
    /// None where the settings could not be read (then `failed` says why).
    builder: Option<DetectorBuilder>,
    threshold: f32,
    top_lines: usize,
    mode: ClassifyMode,
    /// The settings' `exclude`: files not analyzed, as a scan does not scan them.
    exclude: Option<Excludes>,
    /// The model and the cache, once loaded.
    detector: Option<Detector>,
    cache: Option<ScanCache>,
    /// Why the model could not load, once it failed.
    failed: Option<String>,
    documents: HashMap<String, Document>,
    /// Documents to analyze when the model is ready.
    pending: BTreeSet<String>,
}

/// What the workspace's settings and the flags make of the server.
struct Setup {
    builder: DetectorBuilder,
    calibration: Option<Calibration>,
    threshold: f32,
    top_lines: usize,
    mode: ClassifyMode,
    use_cache: bool,
    exclude: Option<Excludes>,
}

/// Serves on stdin and stdout until the client's `exit`.
pub fn run(model: &ModelArgs, args: &LspArgs) -> Result<(), Failure> {
    // Flags are checked before anything is said on the connection.
    if let Some(t) = args.threshold.filter(|t| !(0.0..=1.0).contains(t)) {
        return Err(Failure(format!("--threshold is {t}, expected 0..=1")));
    }
    let (connection, threads) = transport::stdio();
    // Answered before anything slow: the model loads after.
    let (id, params) = connection.initialize_start()?;
    let params: InitializeParams = serde_json::from_value(params).unwrap_or_default();
    let capabilities = ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::FULL),
                save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions {
                    include_text: Some(true),
                })),
                ..Default::default()
            },
        )),
        code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
        ..Default::default()
    };
    let result = serde_json::json!({
        "capabilities": capabilities,
        "serverInfo": ServerInfo { name: "icd".into(), version: Some(env!("CARGO_PKG_VERSION").into()) },
    });
    connection.initialize_finish(id, result)?;

    let root = workspace_root(&params).unwrap_or(std::env::current_dir()?);
    let mut server = Server {
        connection: &connection,
        builder: None,
        threshold: 0.5,
        top_lines: 3,
        mode: ClassifyMode {
            window: None,
            explain: true,
        },
        exclude: None,
        detector: None,
        cache: None,
        failed: None,
        documents: HashMap::new(),
        pending: BTreeSet::new(),
    };
    // A settings or calibration file that cannot be read is shown, as a model that
    // cannot load is, and the server stays up.
    let loaded = match setup(model, args, &root) {
        Ok(setup) => {
            let loaded = load_in_background(
                setup.builder.clone(),
                model.clone(),
                setup.mode.clone(),
                setup.calibration,
                setup.use_cache,
            );
            server.builder = Some(setup.builder);
            server.threshold = setup.threshold;
            server.top_lines = setup.top_lines;
            server.mode = setup.mode;
            server.exclude = setup.exclude;
            Some(loaded)
        }
        Err(Failure(why)) => {
            server.model_failed(why)?;
            None
        }
    };
    let code = server.serve(loaded)?;
    drop(server);
    drop(connection);
    threads.join()?;
    if code != 0 {
        // `exit` without `shutdown`.
        std::process::exit(code);
    }
    Ok(())
}

/// The workspace's settings and the flags.
fn setup(model: &ModelArgs, args: &LspArgs, root: &Path) -> Result<Setup, Failure> {
    let settings = Settings::find(
        &[root.to_path_buf()],
        args.config.as_deref(),
        args.no_config,
    )?;
    let (builder, calibration) = detector_builder(model, &settings)?;
    let threshold = args
        .threshold
        .or(calibration
            .as_ref()
            .and_then(|c| c.threshold)
            .map(|t| t as f32))
        .or(settings.threshold)
        .unwrap_or(0.5);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(Failure(format!(
            "the threshold is {threshold}, expected 0..=1"
        )));
    }
    // As a scan with these settings classifies: in windows where they say so.
    let window = match settings.window == Some(true) {
        true => {
            let max_tokens = builder.resolved_max_tokens()?;
            Some(
                settings
                    .stride
                    .unwrap_or(Detector::default_stride(max_tokens)),
            )
        }
        false => None,
    };
    Ok(Setup {
        builder,
        calibration: calibration.map(|c| c.calibration),
        threshold,
        top_lines: settings.top_lines.unwrap_or(3),
        mode: ClassifyMode {
            window,
            explain: true,
        },
        use_cache: !args.no_cache && settings.cache != Some(false),
        exclude: settings.exclude,
    })
}

/// The workspace's directory: the first workspace folder, else the root URI.
fn workspace_root(params: &InitializeParams) -> Option<PathBuf> {
    let folder = params
        .workspace_folders
        .as_ref()
        .and_then(|f| f.first())
        .map(|f| &f.uri);
    #[allow(deprecated)]
    let uri = folder.or(params.root_uri.as_ref())?;
    file_path(uri)
}

/// The file a `file:` URI names.
fn file_path(uri: &Uri) -> Option<PathBuf> {
    url::Url::parse(uri.as_str()).ok()?.to_file_path().ok()
}

/// Builds the detector and opens the prediction cache on another thread.
fn load_in_background(
    builder: DetectorBuilder,
    model: ModelArgs,
    mode: ClassifyMode,
    calibration: Option<Calibration>,
    use_cache: bool,
) -> Receiver<Loaded> {
    let (sender, receiver) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let load = || -> Loaded {
            let max_tokens = builder.resolved_max_tokens()?;
            let config = RobertaConfig::from_file(&builder.model_dir().join("config.json"))?;
            let mut cache = match use_cache {
                true => ScanCache::open(&builder, &mode, config.id2label, calibration, max_tokens)?,
                false => None,
            };
            let detector = build_detector(builder.clone(), &model)?;
            if let Some(cache) = &mut cache {
                cache.confirm(&builder);
            }
            Ok((detector, cache))
        };
        let _ = sender.send(load());
    });
    receiver
}

impl Server<'_> {
    /// Handles messages until `exit` (the exit status: 0 after `shutdown`, else 1);
    /// takes the model when it is loaded.
    fn serve(&mut self, loaded: Option<Receiver<Loaded>>) -> Result<i32, Failure> {
        let mut loading = loaded;
        loop {
            let never = crossbeam_channel::never();
            let load = loading.as_ref().unwrap_or(&never);
            select! {
                recv(self.connection.receiver) -> message => {
                    let Ok(message) = message else { return Ok(1) };
                    if let Some(code) = self.handle(message)? {
                        return Ok(code);
                    }
                }
                recv(load) -> result => {
                    loading = None;
                    match result {
                        Ok(Ok((detector, cache))) => {
                            self.detector = Some(detector);
                            self.cache = cache;
                            self.log(MessageType::INFO, "icd: the model is loaded".into())?;
                            for uri in std::mem::take(&mut self.pending) {
                                self.analyze_or_log(&uri)?;
                            }
                        }
                        Ok(Err(Failure(why))) => self.model_failed(why)?,
                        Err(_) => self.model_failed("the model's loader stopped".into())?,
                    }
                }
            }
        }
    }

    fn model_failed(&mut self, why: String) -> Result<(), Failure> {
        let message = format!("icd: no findings can be reported: {why}");
        let params = lsp_types::ShowMessageParams {
            typ: MessageType::ERROR,
            message: message.clone(),
        };
        self.notify(ShowMessage::METHOD, params)?;
        self.failed = Some(message);
        self.pending.clear();
        Ok(())
    }

    /// One message; the exit status on `exit`. A message the server cannot take (bad
    /// parameters) is answered with an error or logged, never the end of the server:
    /// only a connection that fails ends it.
    fn handle(&mut self, message: Message) -> Result<Option<i32>, Failure> {
        match message {
            Message::Request(request) => {
                if self.connection.handle_shutdown(&request)? {
                    return Ok(Some(0));
                }
                let id = request.id.clone();
                let response = match self.request(request) {
                    Ok(response) => response,
                    Err(Failure(why)) => Response::new_err(
                        id,
                        lsp_server::ErrorCode::InvalidParams as i32,
                        format!("icd: {why}"),
                    ),
                };
                self.connection.sender.send(Message::Response(response))?;
            }
            Message::Notification(notification) if notification.method == Exit::METHOD => {
                return Ok(Some(1));
            }
            Message::Notification(notification) => {
                let method = notification.method.clone();
                if let Err(Failure(why)) = self.notification(notification) {
                    self.log(MessageType::ERROR, format!("icd: {method}: {why}"))?;
                }
            }
            Message::Response(_) => {}
        }
        Ok(None)
    }

    fn request(&mut self, request: Request) -> Result<Response, Failure> {
        Ok(match request.method.as_str() {
            CodeActionRequest::METHOD => {
                let params: lsp_types::CodeActionParams = serde_json::from_value(request.params)?;
                let text = self
                    .documents
                    .get(params.text_document.uri.as_str())
                    .map(|d| d.text.as_str())
                    .unwrap_or("");
                Response::new_ok(request.id, diagnostics::suppress_actions(&params, text))
            }
            method => Response::new_err(
                request.id,
                lsp_server::ErrorCode::MethodNotFound as i32,
                format!("icd lsp does not handle {method}"),
            ),
        })
    }

    fn notification(&mut self, notification: Notification) -> Result<(), Failure> {
        match notification.method.as_str() {
            DidOpenTextDocument::METHOD => {
                let params: lsp_types::DidOpenTextDocumentParams =
                    serde_json::from_value(notification.params)?;
                let item = params.text_document;
                self.open(&item.uri, &item.language_id, item.text)?;
            }
            DidChangeTextDocument::METHOD => {
                // Kept for the next save; analyzed then, not on every keystroke. The
                // server asked for whole documents: a ranged change is not one.
                let params: lsp_types::DidChangeTextDocumentParams =
                    serde_json::from_value(notification.params)?;
                let uri = params.text_document.uri.as_str();
                let Some(change) = params.content_changes.into_iter().last() else {
                    return Ok(());
                };
                if change.range.is_some() {
                    return Err(Failure(
                        "a ranged change, where the server takes whole documents (TextDocumentSyncKind.Full): ignored".into(),
                    ));
                }
                if let Some(document) = self.documents.get_mut(uri) {
                    document.text = change.text;
                }
            }
            DidSaveTextDocument::METHOD => {
                let params: lsp_types::DidSaveTextDocumentParams =
                    serde_json::from_value(notification.params)?;
                let uri = params.text_document.uri.as_str().to_owned();
                if let (Some(document), Some(text)) = (self.documents.get_mut(&uri), params.text) {
                    document.text = text;
                }
                if self.documents.contains_key(&uri) {
                    self.analyze_or_log(&uri)?;
                }
            }
            DidCloseTextDocument::METHOD => {
                let params: lsp_types::DidCloseTextDocumentParams =
                    serde_json::from_value(notification.params)?;
                let uri = params.text_document.uri;
                self.documents.remove(uri.as_str());
                self.pending.remove(uri.as_str());
                self.publish(&uri, Vec::new())?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A document opened: kept, and analyzed if it is C or C++.
    fn open(&mut self, uri: &Uri, language_id: &str, text: String) -> Result<(), Failure> {
        let Some(path) = file_path(uri) else {
            return Ok(());
        };
        let language = match language_id {
            "c" => Some(Language::C),
            "cpp" | "cuda-cpp" | "objective-cpp" => Some(Language::Cpp),
            _ => Language::from_path(&path),
        };
        let Some(language) = language else {
            return Ok(());
        };
        if self.exclude.as_ref().is_some_and(|e| e.excludes(&path)) {
            return Ok(());
        }
        let key = uri.as_str().to_owned();
        self.documents.insert(
            key.clone(),
            Document {
                path,
                language,
                text,
            },
        );
        self.analyze_or_log(&key)
    }

    /// [`Self::analyze`], whose failure (a function the model could not classify) is
    /// logged: the server goes on.
    fn analyze_or_log(&mut self, key: &str) -> Result<(), Failure> {
        if let Err(Failure(why)) = self.analyze(key) {
            self.log(MessageType::ERROR, format!("icd: {key}: {why}"))?;
        }
        Ok(())
    }

    /// Classifies the document's functions (through the cache) and publishes its
    /// findings; waits for the model where it is not loaded yet.
    fn analyze(&mut self, key: &str) -> Result<(), Failure> {
        if self.failed.is_some() {
            return Ok(());
        }
        let (Some(detector), Some(builder)) = (&self.detector, &self.builder) else {
            self.pending.insert(key.to_owned());
            return Ok(());
        };
        let Some(document) = self.documents.get(key) else {
            return Ok(());
        };
        let file = path_text(&document.path).into_owned();
        let functions: Vec<(String, FunctionSpan)> =
            find_functions(&document.text, document.language)
                .functions
                .into_iter()
                .map(|f| (file.clone(), f))
                .collect();
        let mut results: Vec<Option<Classified>> = match &mut self.cache {
            Some(cache) => cache.get(&functions),
            None => vec![None; functions.len()],
        };
        let misses: Vec<usize> = (0..functions.len())
            .filter(|&i| results[i].is_none())
            .collect();
        if !misses.is_empty() {
            let spans: Vec<&(String, FunctionSpan)> =
                misses.iter().map(|&i| &functions[i]).collect();
            let classified = classify_functions(detector, &spans, &self.mode)?;
            if let Some(cache) = &mut self.cache {
                cache.put(&spans, &classified);
            }
            for (&i, c) in misses.iter().zip(classified) {
                results[i] = Some(c);
            }
        }
        self.log(
            MessageType::LOG,
            format!(
                "icd: {} of {} functions of {file} from the prediction cache",
                functions.len() - misses.len(),
                functions.len()
            ),
        )?;
        let findings: Vec<Finding> = functions
            .into_iter()
            .zip(results)
            .map(|((file, f), c)| {
                Finding::new(&file, f, c.expect("classified"), self.top_lines, false)
            })
            .collect();
        // The triage file's verdicts, as a scan of this file would read them; one that
        // cannot be read is said, and no verdicts apply.
        let triage = match Triage::find(&[document.path.clone()], None, false) {
            Ok(triage) => triage,
            Err(Failure(why)) => {
                self.log(MessageType::WARNING, format!("icd: {why}"))?;
                None
            }
        };
        let report = ScanReport::new(
            findings,
            self.threshold,
            &[],
            builder.model_dir(),
            None,
            triage.as_ref(),
            triage::today(),
        );
        let uri: Uri = key.parse().map_err(|e| Failure(format!("{key}: {e:?}")))?;
        let text = &self.documents[key].text;
        let diagnostics = diagnostics::of_report(&report, &uri, text);
        self.publish(&uri, diagnostics)
    }

    fn publish(&self, uri: &Uri, diagnostics: Vec<lsp_types::Diagnostic>) -> Result<(), Failure> {
        let params = lsp_types::PublishDiagnosticsParams {
            uri: uri.clone(),
            diagnostics,
            version: None,
        };
        self.notify(PublishDiagnostics::METHOD, params)
    }

    fn log(&self, typ: MessageType, message: String) -> Result<(), Failure> {
        self.notify(
            LogMessage::METHOD,
            lsp_types::LogMessageParams { typ, message },
        )
    }

    fn notify(&self, method: &str, params: impl serde::Serialize) -> Result<(), Failure> {
        let notification = Notification::new(method.to_owned(), params);
        self.connection
            .sender
            .send(Message::Notification(notification))?;
        Ok(())
    }
}
