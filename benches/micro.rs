//! criterion micro-benchmarks of the hot pure paths: SSE decoding (throughput), the splitter
//! and the Markdown → Telegram HTML conversion (time per 4 KB). `cargo bench --bench micro`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use parley::engine::ports::LengthUnit;
use parley::engine::split;
use parley::llm::decode_body;
use parley::platform::telegram::format;

/// About 4 KB of the Markdown models write: paragraphs, emphasis, a list, a code block.
fn markdown_4k() -> String {
    let block = "Here is **what matters**: the reply streams in place, and `pacing` keeps it \
        within the limits. A link to [the docs](https://example.com/docs) helps.\n\n\
        - first point, with *emphasis*;\n- second point;\n- third point.\n\n\
        ```rust\nfn main() {\n    println!(\"hello <world> & more\");\n}\n```\n\n";
    block.repeat(4096 / block.len() + 1)[..4096].to_string()
}

/// A streamed answer of `tokens` 4-character chunks, framed as xAI sends it.
fn sse_body(tokens: usize) -> Vec<u8> {
    let mut body = String::new();
    for i in 0..tokens {
        let text = ["Here", " is ", "the ", "tex", "t \\n"][i % 5];
        body.push_str(&format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\
             \"model\":\"grok-4\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n"
        ));
    }
    body.push_str(
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    );
    body.push_str("data: [DONE]\n\n");
    body.into_bytes()
}

fn sse(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let body = sse_body(2_000);
    let mut group = c.benchmark_group("sse_decode");
    group.throughput(Throughput::Bytes(body.len() as u64));
    for read_size in [160, 16 * 1024] {
        group.bench_with_input(
            BenchmarkId::new("reads_of", read_size),
            &read_size,
            |b, &size| b.iter(|| runtime.block_on(decode_body(&body, size))),
        );
    }
    group.finish();
}

fn splitter(c: &mut Criterion) {
    let text = markdown_4k();
    let mut group = c.benchmark_group("split_4k");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("discord_2000_chars", |b| {
        b.iter(|| split::split(&text, 2000, LengthUnit::Chars))
    });
    group.bench_function("telegram_1000_utf16", |b| {
        b.iter(|| split::split(&text, 1000, LengthUnit::Utf16))
    });
    group.finish();
}

fn telegram_html(c: &mut Criterion) {
    let text = markdown_4k();
    let mut group = c.benchmark_group("telegram_html_4k");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("to_html", |b| b.iter(|| format::to_html(&text)));
    group.bench_function("preview", |b| b.iter(|| format::preview(&text)));
    group.finish();
}

criterion_group!(benches, sse, splitter, telegram_html);
criterion_main!(benches);
