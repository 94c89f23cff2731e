//! A child's stdout as a pipe nobody reads, for the tests that a stop
//! request ends a command whose output is stuck.

use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::ChildStdout;

use super::within;

/// Shrinks the pipe to one page: once it holds anything and nobody reads,
/// the child's next write that does not fit blocks for good. (Waiting for a
/// 64 KiB pipe to look full by its byte count does not work: the kernel
/// blocks a writer when its page slots are used, and partly filled pages
/// leave the count short of the capacity.) Call it before the child writes
/// more than a page.
pub fn shrink_to_one_page(stdout: &ChildStdout) {
    // SAFETY: F_SETPIPE_SZ on a pipe this test owns; shrinking needs no
    // privilege and fails only if more than a page is already unread.
    let page = unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(
        page > 0,
        "F_SETPIPE_SZ: {}",
        std::io::Error::last_os_error()
    );
}

/// Reads until a publication line shows, so that what fills the pipe next
/// is publications, not lifecycle lines; then stops reading for good and
/// waits until the pipe holds something again. Returns what it read.
pub async fn read_to_a_publication_then_let_fill(stdout: &mut ChildStdout) -> Vec<u8> {
    let mut written = Vec::new();
    within(async {
        let mut chunk = [0u8; 1024];
        while !String::from_utf8_lossy(&written).contains(r#""event":"publication""#) {
            let read = stdout.read(&mut chunk).await.unwrap();
            assert!(read > 0, "the command closed stdout early");
            written.extend_from_slice(&chunk[..read]);
        }
    })
    .await;
    within(async {
        loop {
            let mut unread: libc::c_int = 0;
            // SAFETY: FIONREAD into an int, on a pipe this test owns.
            unsafe { libc::ioctl(stdout.as_raw_fd(), libc::FIONREAD, &mut unread) };
            if unread > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    written
}

/// Every whole line of `written` is JSON; the last may stop where a
/// blocked write was cut short.
pub fn assert_whole_lines_are_json(written: &[u8]) {
    let text = String::from_utf8_lossy(written);
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines[..lines.len().saturating_sub(1)] {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "{line}"
        );
    }
}
