//! Generate replaces only the function it was asked for: a spec comment, a doc comment and other
//! code in the selection stay, and what the model repeated is not doubled. The real `codetier`
//! binary over stdio, with the fake editor applying the edit, against the fake provider.

use codetier_tests::client::TestServer;
use codetier_tests::fake::{Answer, Behavior, FakeProvider, Script};
use serde_json::json;

const URI: &str = "file:///tmp/codetier-generate-keeps/src/lib.rs";
const SOURCE: &str = "\
fn average(v: &[i32]) -> i32 {
    v.iter().sum::<i32>() / v.len() as i32
}

// spec: None when the slice is empty
/// The largest of `values`.
fn largest(values: &[i32]) -> Option<i32> {
    todo!()
}

fn main() {}
";

fn generate(answer: &str) -> String {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = rt
        .block_on(FakeProvider::start(Script::always(Behavior {
            answer: Answer::Text(answer.to_owned()),
            ..Behavior::default()
        })))
        .expect("the fake provider starts");
    let mut server = TestServer::builder()
        .env("CODETIER_BASE_URL", &fake.base_url())
        .env("GLOBAL_API_KEY", "sk-generate-keeps-test-1f0c")
        .start();
    server.open(URI, "rust", SOURCE);
    // From `average` through the stub: more than the function, as a hurried selection is.
    let result = server.request(
        "workspace/executeCommand",
        json!({
            "command": "codetier.generate",
            "arguments": [{ "uri": URI, "range": {
                "start": { "line": 0, "character": 0 }, "end": { "line": 9, "character": 0 } } }],
        }),
    );
    assert_eq!(result["applied"], true, "{result}");
    let text = server.text(URI).1;
    let (_, on_server) = server.server_text(URI);
    assert_eq!(on_server, text, "the server's copy follows the edit");
    text
}

const IMPLEMENTED: &str = "\
fn largest(values: &[i32]) -> Option<i32> {
    values.iter().copied().max()
}";

#[test]
fn comments_and_other_code_of_the_selection_stay() {
    let text = generate(&format!("```rust\n{IMPLEMENTED}\n```"));
    let expected = SOURCE.replace(
        "fn largest(values: &[i32]) -> Option<i32> {\n    todo!()\n}",
        IMPLEMENTED,
    );
    assert_eq!(text, expected);
}

#[test]
fn what_the_model_repeated_is_not_doubled() {
    let repeated = format!(
        "```rust\nfn average(v: &[i32]) -> i32 {{\n    v.iter().sum::<i32>() / v.len() as i32\n}}\n\n/// The largest of `values`.\n{IMPLEMENTED}\n```"
    );
    let text = generate(&repeated);
    assert_eq!(text.matches("fn average").count(), 1, "{text}");
    assert_eq!(text.matches("/// The largest of").count(), 1, "{text}");
    assert!(
        text.contains(
            "// spec: None when the slice is empty\n/// The largest of `values`.\nfn largest"
        ),
        "{text}"
    );
    assert!(
        text.contains("values.iter().copied().max()") && !text.contains("todo!()"),
        "{text}"
    );
}
