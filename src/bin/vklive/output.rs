//! Lines to stdout from a thread of their own, so that a reader that stops
//! reading (a full pipe) blocks that thread and never the async code: a
//! stop request is still heard and ends the command at once.

use std::io::Write;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

/// Lines waiting for the writer thread; past this, [`Output::line`] waits.
const QUEUE: usize = 1024;

/// The writer thread's end of the queue.
pub(crate) struct Output {
    lines: mpsc::Sender<String>,
    done: oneshot::Receiver<()>,
}

/// stdout is closed (its reader went away): nothing more can be written.
#[derive(Debug)]
pub(crate) struct Closed;

impl Output {
    /// Starts the writer thread on stdout.
    pub(crate) fn stdout() -> Result<Output, String> {
        let (lines, mut receiver) = mpsc::channel::<String>(QUEUE);
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("vklive-stdout".into())
            .spawn(move || {
                let mut out =
                    std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
                while let Some(line) = receiver.blocking_recv() {
                    if writeln!(out, "{line}").is_err() {
                        break; // the reader went away
                    }
                    // Flush when nothing more is waiting, so a burst costs one write.
                    if receiver.is_empty() && out.flush().is_err() {
                        break;
                    }
                }
                let _ = out.flush();
                let _ = done_tx.send(());
            })
            .map_err(|error| format!("cannot start the output thread: {error}"))?;
        Ok(Output { lines, done })
    }

    /// Queues a line, waiting while the queue is full.
    pub(crate) async fn line(&self, line: String) -> Result<(), Closed> {
        self.lines.send(line).await.map_err(|_| Closed)
    }

    /// Queues a line if there is room; drops it otherwise (when stopping).
    pub(crate) fn try_line(&self, line: String) {
        let _ = self.lines.try_send(line);
    }

    /// Ends the output: everything queued is written, unless that takes
    /// longer than `patience` (a reader that does not read); what could not
    /// be written is then left behind, and the thread with it.
    pub(crate) async fn finish(self, patience: Option<Duration>) {
        let Output { lines, done } = self;
        drop(lines);
        match patience {
            Some(patience) => {
                let _ = tokio::time::timeout(patience, done).await;
            }
            None => {
                let _ = done.await;
            }
        }
    }
}
