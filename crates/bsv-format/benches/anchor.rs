//! Performance anchor: the 1,000-transaction chain BEEF of
//! `shared/research/anchor-bench/` (see docs/benchmarks.md for every row).
//!
//! ```text
//! cargo bench -p bsv-format --bench anchor                 # criterion groups
//! cargo bench -p bsv-format --bench anchor -- --report     # one summary table with the target ratios
//! ```
//! The workload file is `$ESCROWD_ANCHOR_BENCH`, else
//! `<workspace>/../shared/research/anchor-bench/chain1000.beef.hex`; a missing
//! or different file is a panic, never a skipped benchmark.

/// The bench's modules live in `benches/anchor/` (an inline module of the
/// crate root resolves its children there).
mod anchor {
    pub mod ops;
    pub mod report;
    pub mod workload;
}

use anchor::{ops, report, workload};

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};

use workload::CHAIN_TXS;

fn benches(c: &mut Criterion) {
    let w = workload::load();
    let decoded = ops::parse(&w.beef);
    let flags = ops::script_flags();
    let pool2 = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("2-thread pool");

    let mut g = c.benchmark_group("anchor/parse");
    g.throughput(Throughput::Bytes(w.beef.len() as u64));
    // Each decoded BEEF is dropped after its own timing, as in the report:
    // the allocator reuses warm memory, as a long-running decoder's does
    // (`iter_with_large_drop` keeps a batch alive and faults in fresh pages).
    g.bench_function("p1_beef_decode_with_txids", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t0 = Instant::now();
                let beef = black_box(ops::parse(black_box(&w.beef)));
                total += t0.elapsed();
                drop(beef);
            }
            total
        })
    });
    g.finish();

    let mut g = c.benchmark_group("anchor/verify");
    g.throughput(Throughput::Elements(CHAIN_TXS as u64));
    g.sample_size(30).measurement_time(Duration::from_secs(5));
    g.bench_function("v1_full_verify_2t", |b| {
        b.iter_batched(
            || decoded.clone(),
            |beef| pool2.install(|| ops::full_verify(beef)),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("v2_verify_no_scripts", |b| {
        b.iter_batched(
            || decoded.clone(),
            |beef| pool2.install(|| ops::structure_verify(beef)),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("v3_parse_and_verify_2t", |b| {
        b.iter_with_large_drop(|| pool2.install(|| ops::parse_and_verify(black_box(&w.beef))))
    });
    g.finish();

    let mut g = c.benchmark_group("anchor/ef");
    g.throughput(Throughput::Elements(CHAIN_TXS as u64));
    g.bench_function("e1_ef_all_1000", |b| {
        b.iter(|| ops::ef_all(black_box(&decoded), &w.chain_txids))
    });
    g.finish();

    let mut g = c.benchmark_group("anchor/crypto");
    g.throughput(Throughput::Elements(CHAIN_TXS as u64));
    g.sample_size(30).measurement_time(Duration::from_secs(5));
    g.bench_function("d2_sighash_1000", |b| {
        b.iter(|| ops::sighash_all(black_box(&w.chain)))
    });
    g.bench_function("s1_bare_verify_1t", |b| {
        b.iter(|| ops::bare_1t(black_box(&w.triples)))
    });
    g.bench_function("s2_bare_verify_2t", |b| {
        b.iter(|| pool2.install(|| ops::bare_par(black_box(&w.triples))))
    });
    g.bench_function("s3_parse_and_verify_2t", |b| {
        b.iter(|| pool2.install(|| ops::parse_verify_par(black_box(&w.triples))))
    });
    g.bench_function("k2_interpreter_2t", |b| {
        b.iter(|| pool2.install(|| ops::scripts_par(black_box(&w.chain), flags)))
    });
    g.finish();
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.iter().any(|a| a == "--report") {
        report::run(&argv);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
