//! Where the connection actor runs: a task of the caller's runtime, or a
//! thread of its own with a one-thread runtime.
//!
//! On a multi-threaded runtime (`#[tokio::main]`) a task bounces between
//! the workers, and the worker that is not running it sits in `epoll_wait`
//! and is woken by every segment that reaches the socket the actor is busy
//! reading. On a thread of its own the actor has its own `epoll`, which
//! nothing waits in while it works: measured on the e2e bench, 5% less CPU
//! per event (`docs/performance.md`). On a current-thread runtime the
//! caller chose one thread, and the actor stays a task of it.

use std::future::Future;

use tokio::runtime::RuntimeFlavor;

/// The name of the actor's own thread (at most 15 bytes: Linux keeps no more).
pub(crate) const THREAD_NAME: &str = "vklive-actor";

/// Whether the actor gets a thread of its own: as the caller chose, else
/// when the caller's runtime has several workers.
pub(crate) fn on_own_thread(choice: Option<bool>, caller: RuntimeFlavor) -> bool {
    choice.unwrap_or(caller != RuntimeFlavor::CurrentThread)
}

/// Runs `actor` to its end on a new thread, under a one-thread runtime and
/// the caller's `tracing` dispatcher (a scoped one too). The thread ends
/// with the actor, which ends once the caller's stream is dropped.
pub(crate) fn spawn_on_own_thread(
    actor: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    std::thread::Builder::new()
        .name(THREAD_NAME.to_owned())
        .spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || runtime.block_on(actor));
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_actor_gets_its_own_thread_on_a_multi_threaded_runtime_unless_told() {
        assert!(on_own_thread(None, RuntimeFlavor::MultiThread));
        assert!(!on_own_thread(None, RuntimeFlavor::CurrentThread));
        assert!(!on_own_thread(Some(false), RuntimeFlavor::MultiThread));
        assert!(on_own_thread(Some(true), RuntimeFlavor::CurrentThread));
    }

    #[test]
    fn the_thread_name_fits_what_linux_keeps() {
        assert!(THREAD_NAME.len() <= 15);
    }
}
