//! The server's stdio transport: lsp-server's framing, with the bounds its own reader
//! lacks. lsp-server allocates whatever a frame's `Content-Length` claims (a 30-byte
//! input asking for 100 GB aborts the process) and reads a header line of any length;
//! here a header line holds at most [`MAX_HEADER_LINE`] bytes and a message at most
//! [`MAX_MESSAGE`], and a larger message is read past and dropped, with a line on
//! stderr, so that the next one is served (a request so dropped gets no answer).

use std::io::{BufRead, Read, Write};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver};
use lsp_server::{Connection, Message};

/// Largest message read: a document of 64 MiB, twice the most a scan parses, with room
/// for its JSON escaping.
const MAX_MESSAGE: u64 = 128 << 20;

/// Longest header line read (`Content-Length: ...`, `Content-Type: ...`).
const MAX_HEADER_LINE: u64 = 8 << 10;

/// The threads that move messages between stdio and the [`Connection`].
pub struct Transport {
    reader: JoinHandle<std::io::Result<()>>,
    writer: JoinHandle<std::io::Result<()>>,
}

impl Transport {
    /// Waits for both threads: the reader ends at the client's `exit` (or the end of
    /// stdin), the writer when the connection's sender is dropped.
    pub fn join(self) -> std::io::Result<()> {
        for thread in [self.reader, self.writer] {
            thread
                .join()
                .map_err(|_| std::io::Error::other("an LSP transport thread panicked"))??;
        }
        Ok(())
    }
}

/// A connection on stdin and stdout.
pub fn stdio() -> (Connection, Transport) {
    let (to_client, outgoing) = bounded::<Message>(0);
    let (incoming, from_client) = bounded::<Message>(0);
    let writer = std::thread::spawn(move || write_all(outgoing));
    let reader = std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        while let Some(message) = read_message(&mut stdin)? {
            let exit = matches!(&message, Message::Notification(n) if n.method == "exit");
            if incoming.send(message).is_err() || exit {
                break;
            }
        }
        Ok(())
    });
    let connection = Connection {
        sender: to_client,
        receiver: from_client,
    };
    (connection, Transport { reader, writer })
}

fn write_all(outgoing: Receiver<Message>) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    for message in outgoing {
        message.write(&mut stdout)?;
        stdout.flush()?;
    }
    Ok(())
}

/// The next message on `input`, `None` at its end; one past [`MAX_MESSAGE`] is read
/// past and dropped.
fn read_message(input: &mut impl BufRead) -> std::io::Result<Option<Message>> {
    loop {
        let mut length = None;
        loop {
            let mut line = Vec::new();
            input
                .by_ref()
                .take(MAX_HEADER_LINE)
                .read_until(b'\n', &mut line)?;
            if line.is_empty() {
                return Ok(None);
            }
            let Some(header) = line.strip_suffix(b"\r\n") else {
                return Err(invalid(format!(
                    "a header line longer than {MAX_HEADER_LINE} bytes or not ended by CR LF"
                )));
            };
            if header.is_empty() {
                break;
            }
            let header = String::from_utf8_lossy(header);
            if let Some((name, value)) = header.split_once(": ") {
                if name.eq_ignore_ascii_case("Content-Length") {
                    length = Some(value.trim().parse::<u64>().map_err(|e| {
                        invalid(format!("Content-Length {value:?} is not a length: {e}"))
                    })?);
                }
            }
        }
        let length = length.ok_or_else(|| invalid("a message with no Content-Length".into()))?;
        if length > MAX_MESSAGE {
            eprintln!(
                "icd lsp: a message of {length} bytes is past the limit of {MAX_MESSAGE}; dropped"
            );
            let skipped = std::io::copy(&mut input.by_ref().take(length), &mut std::io::sink())?;
            if skipped < length {
                return Ok(None);
            }
            continue;
        }
        let mut body = Vec::new();
        input.by_ref().take(length).read_to_end(&mut body)?;
        if (body.len() as u64) < length {
            return Err(invalid(format!(
                "the input ended {} bytes into a message of {length}",
                body.len()
            )));
        }
        // What lsp-server's reader does with a frame's text.
        return serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| invalid(format!("malformed LSP payload: {e}")));
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &str) -> String {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    }

    #[test]
    fn oversized_messages_are_dropped_and_the_next_one_read() {
        let next = r#"{"jsonrpc":"2.0","method":"exit"}"#;
        let huge = "x".repeat((MAX_MESSAGE + 1) as usize);
        let input = format!("{}{}", frame(&huge), frame(next));
        let mut reader = std::io::Cursor::new(input.into_bytes());
        match read_message(&mut reader).unwrap() {
            Some(Message::Notification(n)) => assert_eq!(n.method, "exit"),
            other => panic!("{other:?}"),
        }
        assert!(read_message(&mut reader).unwrap().is_none());
    }

    #[test]
    fn a_claimed_length_past_the_input_allocates_nothing_and_ends() {
        let mut reader = std::io::Cursor::new(b"Content-Length: 99999999999\r\n\r\n".to_vec());
        assert!(read_message(&mut reader).unwrap().is_none());
        let long_header = format!("X-{}\r\n\r\n", "y".repeat(10 << 10));
        assert!(read_message(&mut std::io::Cursor::new(long_header.into_bytes())).is_err());
        assert!(read_message(&mut std::io::Cursor::new(
            b"Content-Length: -1\r\n\r\n".to_vec()
        ))
        .is_err());
    }
}
