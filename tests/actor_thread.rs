//! Where the connection runs: on a thread of its own under a multi-threaded
//! runtime, a thread that ends with the connection; as a task of the
//! caller's runtime under a current-thread one, or when asked.
//!
//! The threads are counted by name in `/proc/self/task` (Linux), so the
//! tests of this file take turns.

mod common;

use common::*;
use vklive_pubsub::emulator::{ChannelNames, EmulatorConfig};
use vklive_pubsub::{ClientBuilder, Event};

/// The tests of this file count the threads of the whole process.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How many threads of this process carry the connection's thread name.
fn actor_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim_end() == "vklive-actor")
        })
        .count()
}

/// Connects with `configure` applied, receives one chat message, closes,
/// and returns how many actor threads ran while it was connected.
async fn threads_while_connected(configure: impl FnOnce(ClientBuilder) -> ClientBuilder) -> usize {
    let emulator = start(EmulatorConfig::default()).await;
    let channel = ChannelNames::for_channel_id(1).chat;
    let (client, mut events) = connect(configure(builder(&emulator).channel(&channel))).await;
    wait_subscribed(&mut events, &[&channel]).await;
    emulator.publish(&channel, chat(77, "hello"));
    let received = publications(&mut events, 1).await;
    assert_eq!(chat_id(&received[0]), Some(77));
    let running = actor_threads();
    within(client.close()).await.expect("closed");
    // Fails the test unless `Closed` arrives.
    wait_for_event(&mut events, |e| matches!(e, Event::Closed { .. })).await;
    drop(events);
    wait_until(&emulator, "the socket closed", |e| e.socket_count() == 0).await;
    running
}

/// Waits until no actor thread is left.
async fn actor_threads_end() {
    within(async {
        // A thread's end is not an event one can await: look again shortly.
        while actor_threads() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_multi_threaded_runtime_the_connection_runs_on_its_own_thread_which_ends_with_it() {
    let _turn = ONE_AT_A_TIME.lock().await;
    actor_threads_end().await;
    assert_eq!(threads_while_connected(|builder| builder).await, 1);
    actor_threads_end().await;
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asked_to_the_connection_stays_a_task_of_the_multi_threaded_runtime() {
    let _turn = ONE_AT_A_TIME.lock().await;
    actor_threads_end().await;
    let running = threads_while_connected(|builder| builder.actor_thread(false)).await;
    assert_eq!(running, 0);
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "current_thread")]
async fn on_a_current_thread_runtime_the_connection_stays_on_that_thread_unless_asked() {
    let _turn = ONE_AT_A_TIME.lock().await;
    actor_threads_end().await;
    assert_eq!(threads_while_connected(|builder| builder).await, 0);
    let running = threads_while_connected(|builder| builder.actor_thread(true)).await;
    assert_eq!(running, 1);
    actor_threads_end().await;
}

#[test]
fn starting_outside_a_tokio_runtime_is_a_clear_error_not_a_panic() {
    let error = vklive_pubsub::Client::with_user_token(USER_TOKEN)
        .spawn()
        .expect_err("no runtime to run on");
    assert_eq!(error.kind(), vklive_pubsub::ErrorKind::InvalidArgument);
    assert!(error.to_string().contains("tokio runtime"), "{error}");
}
