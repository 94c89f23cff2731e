//! A deterministic mutation fuzzer for the decoders, on the stable toolchain.
//!
//! It mutates the inputs of `tests/fuzz/corpus/` (byte flips, inserted,
//! deleted and duplicated ranges, splices of two inputs, and JSON-aware
//! tweaks: huge numbers, deep nesting, escapes, swapped and duplicated keys)
//! and runs each through the checks of `tests/fuzz/check.rs`: the frame
//! decoder, the publication fast path against the general decoder, and the
//! VK event decoder. A panic or a disagreement saves the input to
//! `tests/fuzz/crashes/` and ends the run with status 1; copy it to
//! `tests/fuzz/regressions/` once fixed, and `tests/fuzz_regressions.rs`
//! keeps checking it.
//!
//! ```sh
//! cargo run --release --example fuzz -- --seconds 60
//! cargo run --release --example fuzz -- --iterations 10000000 --seed 7 --jobs 2
//! ```
//!
//! The same seed and job count give the same inputs (the corpus is fixed
//! during a run). A stack overflow or an abort cannot be caught: the
//! progress lines name the iteration, so `--iterations` and `--seed` replay
//! the run up to it.

#[path = "../tests/fuzz/check.rs"]
mod check;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Mutation fuzzer for the protocol and event decoders")]
struct Args {
    /// Run for this many seconds (default 10 when no --iterations is given).
    #[arg(long)]
    seconds: Option<u64>,
    /// Run this many inputs in all (over all jobs).
    #[arg(long)]
    iterations: Option<u64>,
    /// Seed of the mutation sequence.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Threads, each with its own sequence derived from the seed.
    #[arg(long, default_value_t = 1)]
    jobs: u64,
    /// Directory of starting inputs.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/corpus"))]
    corpus: PathBuf,
    /// Where failing inputs are written.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/crashes"))]
    crashes: PathBuf,
    /// Longest input tried, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    max_len: usize,
}

/// SplitMix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const INTERESTING_BYTES: &[u8] = b"\0\x01\x7f\x80\xff\"\\{}[],:\n\r\t 0-+.eEnul";

const TOKENS: &[&str] = &[
    "{}",
    "[]",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "-1",
    "1e400",
    "-1e400",
    "0.5",
    "1E+2",
    "18446744073709551615",
    "18446744073709551616",
    "4294967295",
    "4294967296",
    "99999999999999999999999999999999999999",
    "-9223372036854775809",
    "\"\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\udfff\"",
    "\"\\ud83d\\ude00\"",
    "\"\\\"\"",
    "\"\\\\\"",
    "\"\\n\"",
    "\"\\/\"",
    "\"\\x\"",
    "\"\u{ff}\"",
    "\"é\"",
    "\n",
    "\n\n",
    "{}\n",
    "\n{}",
    ",",
    ":",
    "\"push\":",
    "\"pub\":",
    "\"data\":",
    "\"channel\":",
    "\"offset\":",
    "\"tags\":",
    "\"info\":",
    "\"id\":",
    "\"type\":",
    "\"error\":",
    "\"connect\":",
    "\"subscribe\":",
    "\"unsubscribe\":",
    "\"join\":",
    "\"leave\":",
    "\"message\":",
    "\"disconnect\":",
    "\"publications\":",
    "\"chat_message\":",
    "\"author\":",
    "\"parts\":",
    "\"text\":",
    "\"content\":",
];

const KEYS: &[&str] = &[
    "push",
    "pub",
    "data",
    "channel",
    "offset",
    "tags",
    "info",
    "id",
    "type",
    "error",
    "connect",
    "subscribe",
    "unsubscribe",
    "refresh",
    "sub_refresh",
    "publish",
    "history",
    "join",
    "leave",
    "message",
    "disconnect",
    "publications",
    "epoch",
    "recovered",
    "client",
    "user",
    "chat_message",
    "author",
    "parts",
    "text",
    "content",
    "nick",
    "created_at",
];

/// Byte ranges of the JSON string literals in `input` (quotes included).
fn strings(input: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut index = 0;
    while index < input.len() {
        if input[index] == b'"' {
            let start = index;
            index += 1;
            while index < input.len() && input[index] != b'"' {
                index += if input[index] == b'\\' { 2 } else { 1 };
            }
            if index < input.len() {
                found.push((start, index + 1));
            }
        }
        index += 1;
    }
    found
}

/// Byte ranges of the numbers in `input`.
fn numbers(input: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut index = 0;
    while index < input.len() {
        if input[index].is_ascii_digit() || input[index] == b'-' {
            let start = index;
            while index < input.len() && b"0123456789-+.eE".contains(&input[index]) {
                index += 1;
            }
            found.push((start, index));
        } else {
            index += 1;
        }
    }
    found
}

/// One random mutation of `input`, in place; `other` is for splices.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    let len = input.len();
    match rng.below(16) {
        // Flip a bit.
        0 if len > 0 => {
            let at = rng.below(len);
            input[at] ^= 1 << rng.below(8);
        }
        // An interesting byte.
        1 if len > 0 => {
            let at = rng.below(len);
            input[at] = *rng.pick(INTERESTING_BYTES);
        }
        // Insert random bytes.
        2 => {
            let at = rng.below(len + 1);
            let count = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..count).map(|_| rng.next() as u8).collect();
            input.splice(at..at, bytes);
        }
        // Delete a range.
        3 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(32.min(len - start))).min(len);
            input.drain(start..end);
        }
        // Duplicate a range somewhere.
        4 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(64.min(len - start))).min(len);
            let copy = input[start..end].to_vec();
            let at = rng.below(len + 1);
            input.splice(at..at, copy);
        }
        // Splice: our head, the other input's tail.
        5 if !other.is_empty() => {
            let cut = rng.below(len + 1);
            let from = rng.below(other.len());
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        // Join with the other input as a second line (multi-line frames).
        6 => {
            input.push(b'\n');
            input.extend_from_slice(other);
        }
        // Insert a JSON token.
        7 => {
            let at = rng.below(len + 1);
            input.splice(at..at, rng.pick(TOKENS).bytes());
        }
        // Replace a number with an extreme one.
        8 => {
            let found = numbers(input);
            if !found.is_empty() {
                let (start, end) = *rng.pick(&found);
                let extreme = rng.pick(&TOKENS[5..18]);
                input.splice(start..end, extreme.bytes());
            }
        }
        // Deep nesting.
        9 => {
            let at = rng.below(len + 1);
            let depth = 1 + rng.below(300);
            let (open, close): (&[u8], &[u8]) = match rng.below(3) {
                0 => (b"[", b"]"),
                1 => (b"{\"a\":", b"}"),
                _ => (b"{\"data\":", b"}"),
            };
            let mut nested = open.repeat(depth);
            if rng.chance(2) {
                nested.extend_from_slice(b"1");
                nested.extend_from_slice(&close.repeat(depth));
            }
            input.splice(at..at, nested);
        }
        // Rewrite a string: escapes, another key, or another type.
        10 | 11 => {
            let found = strings(input);
            if !found.is_empty() {
                let (start, end) = *rng.pick(&found);
                let replacement = match rng.below(5) {
                    0 => format!("\"{}\"", rng.pick(KEYS)),
                    1 => {
                        let escapes = [
                            "\\u0000",
                            "\\ud800",
                            "\\udc00\\ud800",
                            "\\\"",
                            "\\\\",
                            "\\u00e9",
                            "\\t",
                        ];
                        let inner = &input[start + 1..end - 1];
                        let cut = rng.below(inner.len() + 1);
                        let mut text = String::from_utf8_lossy(&inner[..cut]).into_owned();
                        text.push_str(escapes[rng.below(escapes.len())]);
                        text.push_str(&String::from_utf8_lossy(&inner[cut..]));
                        format!("\"{text}\"")
                    }
                    2 => rng.pick(&TOKENS[..19]).to_string(),
                    3 => format!("\"{}\"", "x".repeat(rng.below(5000))),
                    _ => "\"\"".to_string(),
                };
                input.splice(start..end, replacement.bytes());
            }
        }
        // Swap two strings (keys or values).
        12 => {
            let found = strings(input);
            if found.len() >= 2 {
                let (mut a, mut b) = (*rng.pick(&found), *rng.pick(&found));
                if a.0 > b.0 {
                    std::mem::swap(&mut a, &mut b);
                }
                if a.1 <= b.0 {
                    let first = input[a.0..a.1].to_vec();
                    let second = input[b.0..b.1].to_vec();
                    input.splice(b.0..b.1, first);
                    input.splice(a.0..a.1, second);
                }
            }
        }
        // Duplicate a key with a new value after an opening brace.
        13 => {
            let braces: Vec<usize> = (0..len).filter(|&i| input[i] == b'{').collect();
            if !braces.is_empty() {
                let at = *rng.pick(&braces) + 1;
                let value = rng.pick(&TOKENS[..19]);
                let entry = format!("\"{}\":{value},", rng.pick(KEYS));
                input.splice(at..at, entry.bytes());
            }
        }
        // Truncate.
        14 if len > 0 => input.truncate(rng.below(len)),
        // Whitespace somewhere.
        _ => {
            let at = rng.below(len + 1);
            input.insert(at, *rng.pick(b" \t\r\n"));
        }
    }
}

fn load_corpus(directory: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

thread_local! {
    /// The message of the last panic on this thread.
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// What one job found.
struct Failure {
    input: Vec<u8>,
    what: String,
}

fn run_job(
    job: u64,
    args: &Args,
    corpus: &[Vec<u8>],
    deadline: Option<Instant>,
    quota: Option<u64>,
    done: &AtomicU64,
    stop: &AtomicBool,
) -> (check::Coverage, Option<Failure>) {
    let mut rng = Rng(args.seed ^ job.wrapping_mul(0xA24B_AED4_963E_E407));
    let mut count = 0u64;
    let mut coverage = check::Coverage::default();
    while !stop.load(Ordering::Relaxed) {
        if quota.is_some_and(|quota| count >= quota) {
            break;
        }
        if count.is_multiple_of(1024) && deadline.is_some_and(|deadline| Instant::now() >= deadline)
        {
            break;
        }
        let mut input = rng.pick(corpus).clone();
        let other = rng.pick(corpus);
        for _ in 0..1 + rng.below(6) {
            mutate(&mut rng, &mut input, other);
        }
        input.truncate(args.max_len);
        count += 1;
        if count.is_multiple_of(4096) {
            done.fetch_add(4096, Ordering::Relaxed);
        }
        let outcome = std::panic::catch_unwind(|| check::check(&input));
        let what = match outcome {
            Ok(Ok(seen)) => {
                coverage.lines += seen.lines;
                coverage.decoded += seen.decoded;
                coverage.fast += seen.fast;
                continue;
            }
            Ok(Err(disagreement)) => disagreement,
            Err(_) => format!(
                "panic: {}",
                PANIC
                    .with(|panic| panic.borrow_mut().take())
                    .unwrap_or_default()
            ),
        };
        stop.store(true, Ordering::Relaxed);
        done.fetch_add(count % 4096, Ordering::Relaxed);
        return (coverage, Some(Failure { input, what }));
    }
    done.fetch_add(count % 4096, Ordering::Relaxed);
    (coverage, None)
}

fn main() {
    let args = Args::parse();
    let corpus = load_corpus(&args.corpus);
    assert!(!corpus.is_empty(), "{}: no inputs", args.corpus.display());
    let jobs = args.jobs.max(1);
    let seconds = match (args.seconds, args.iterations) {
        (None, None) => Some(10),
        (seconds, _) => seconds,
    };
    let deadline = seconds.map(|seconds| Instant::now() + Duration::from_secs(seconds));
    let quota = args.iterations.map(|total| total.div_ceil(jobs));
    eprintln!(
        "fuzz: {} corpus inputs, seed {}, {jobs} job(s), {}",
        corpus.len(),
        args.seed,
        match (seconds, args.iterations) {
            (Some(seconds), _) => format!("{seconds} s"),
            (None, Some(iterations)) => format!("{iterations} inputs"),
            (None, None) => unreachable!(),
        }
    );

    std::panic::set_hook(Box::new(|info| {
        let message = format!("{info}");
        PANIC.with(|panic| *panic.borrow_mut() = Some(message));
    }));

    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let args = Arc::new(args);
    let corpus = Arc::new(corpus);
    let workers: Vec<_> = (0..jobs)
        .map(|job| {
            let (args, corpus, done, stop) =
                (args.clone(), corpus.clone(), done.clone(), stop.clone());
            std::thread::spawn(move || run_job(job, &args, &corpus, deadline, quota, &done, &stop))
        })
        .collect();

    // Progress every 10 s while the jobs run.
    let mut last_report = Instant::now();
    while !workers.iter().all(|worker| worker.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            let total = done.load(Ordering::Relaxed);
            let rate = total as f64 / started.elapsed().as_secs_f64();
            eprintln!("fuzz: {total} inputs, {rate:.0}/s");
        }
    }
    let mut coverage = check::Coverage::default();
    let mut failures = Vec::new();
    for worker in workers {
        let (seen, failure) = worker.join().expect("a job died");
        coverage.lines += seen.lines;
        coverage.decoded += seen.decoded;
        coverage.fast += seen.fast;
        failures.extend(failure);
    }
    let _ = std::panic::take_hook();

    let elapsed = started.elapsed();
    let total = done.load(Ordering::Relaxed);
    println!(
        "fuzz: {total} inputs, {} failures, {:.1} s, {:.0} inputs/s",
        failures.len(),
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "fuzz: {} lines, {} decoded by the general decoder, {} taken by the fast path and compared",
        coverage.lines, coverage.decoded, coverage.fast
    );
    if failures.is_empty() {
        return;
    }
    std::fs::create_dir_all(&args.crashes).expect("cannot create the crashes directory");
    for failure in &failures {
        let name = format!("crash-{:016x}", fnv1a(&failure.input));
        let path = args.crashes.join(name);
        std::fs::write(&path, &failure.input).expect("cannot save the input");
        eprintln!("fuzz: {} -> {}", failure.what, path.display());
    }
    std::process::exit(1);
}

/// A stable name for an input.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
