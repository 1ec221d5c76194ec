//! Fixtures per language for widening by syntax, the definitions context and verification.

use ropey::Rope;

use super::*;

/// Fixture mini-language: `|` is a cursor, `‹…›` a selection, `«…»` the block expected.
struct Fixture {
    text: String,
    selection: std::ops::Range<usize>,
    expected: Option<std::ops::Range<usize>>,
}

fn fixture(src: &str) -> Fixture {
    let (mut text, mut n) = (String::new(), 0);
    let (mut sel, mut exp) = ((None, None), (None, None));
    for c in src.chars() {
        match c {
            '|' => sel = (Some(n), Some(n)),
            '‹' => sel.0 = Some(n),
            '›' => sel.1 = Some(n),
            '«' => exp.0 = Some(n),
            '»' => exp.1 = Some(n),
            _ => {
                text.push(c);
                n += 1;
            }
        }
    }
    let (Some(a), Some(b)) = sel else {
        panic!("fixture needs | or ‹›: {src}");
    };
    Fixture {
        text,
        selection: a..b,
        expected: match exp {
            (Some(a), Some(b)) => Some(a..b),
            _ => None,
        },
    }
}

fn parsed(lang: Lang, text: &str) -> Parsed {
    parse(lang, &Rope::from_str(text)).expect("parses")
}

/// Widens the fixture's selection by syntax; checks the range and the description.
fn check_block(lang: Lang, src: &str, describe: Option<&str>) {
    for src in [src.to_owned(), src.replace('\n', "\r\n")] {
        let f = fixture(&src);
        let p = parsed(lang, &f.text);
        let got = enclosing_block(&p, f.selection.clone());
        let show = |r: &std::ops::Range<usize>| p.text().slice(r.clone()).to_string();
        assert_eq!(
            got.as_ref().map(|b| b.chars.clone()),
            f.expected,
            "{lang:?} fixture:\n{src}\ngot: {:?}\nwanted: {:?}",
            got.as_ref().map(|b| show(&b.chars)),
            f.expected.as_ref().map(show)
        );
        assert_eq!(got.map(|b| b.describe()).as_deref(), describe, "{src}");
    }
}

#[test]
fn python_functions_methods_and_classes() {
    check_block(
        Lang::Python,
        "import os\n\n«def load(path):\n    with open(path) as f:\n        data = f.read()\n    ret|urn data»\n\ndef other():\n    pass\n",
        Some("function `load` (lines 3–6)"),
    );
    // A method, not its class; decorators belong to it.
    check_block(
        Lang::Python,
        "class Stats:\n    '''Numbers.'''\n\n«    @staticmethod\n    def average(xs):\n        total = sum(xs)\n        return total / le|n(xs)»\n\n    def median(self):\n        pass\n",
        Some("method `average` (lines 4–7)"),
    );
    // Between methods, the class.
    check_block(
        Lang::Python,
        "«class Stats:\n    limit = |3\n\n    def median(self):\n        pass»\n",
        Some("class `Stats` (lines 1–5)"),
    );
    // A cursor on the comment above a function means that function, comments included.
    check_block(
        Lang::Python,
        "x = 1\n\n«# Loads the file.\n# Returns| bytes.\ndef load(path):\n    return open(path).read()»\n",
        Some("function `load` (lines 3–6)"),
    );
    // A one-line lambda is not a block; the function around it is.
    check_block(
        Lang::Python,
        "«def f(xs):\n    return sorted(xs, key=lambda x: x|.name)»\n",
        Some("function `f` (lines 1–2)"),
    );
    // Top-level code has no enclosing definition.
    check_block(Lang::Python, "x = 1\nprint(|x)\n", None);
}

#[test]
fn javascript_callbacks_methods_and_exports() {
    check_block(
        Lang::JavaScript,
        "const app = express();\n\napp.get('/', (req, res) => {\n«  items.forEach(item => {\n    const s = `${item.name} {`;\n    res.wri|te(s);\n  });»\n});\n",
        Some("function (lines 4–7)"),
    );
    check_block(
        Lang::JavaScript,
        "«export function largest(values) {\n  return Math.max(...val|ues);\n}»\n",
        Some("function `largest` (lines 1–3)"),
    );
    check_block(
        Lang::JavaScript,
        "class Cart {\n«  total() {\n    return this.items.reduce((a, b) => a + b.p|rice, 0);\n  }»\n}\n",
        Some("method `total` (lines 2–4)"),
    );
    check_block(
        Lang::JavaScript,
        "«const add = (a, b) => {\n  return a |+ b;\n};»\n",
        Some("function `add` (lines 1–3)"),
    );
}

#[test]
fn typescript_and_tsx() {
    check_block(
        Lang::TypeScript,
        "«interface Point {\n  x: num|ber;\n  y: number;\n}»\n",
        Some("interface `Point` (lines 1–4)"),
    );
    check_block(
        Lang::TypeScript,
        "export class Cache<T> {\n  private items = new Map<string, T>();\n«  get(key: string): T | undefined {\n    return this.items.g|et(key);\n  }»\n}\n",
        Some("method `get` (lines 3–5)"),
    );
    check_block(
        Lang::Tsx,
        "import React from 'react';\n\n«export const Badge = ({ count }: { count: number }) => {\n  return <span className=\"badge\">{co|unt}</span>;\n};»\n",
        Some("function `Badge` (lines 3–5)"),
    );
}

#[test]
fn go_functions_methods_and_types() {
    check_block(
        Lang::Go,
        "package main\n\n«func Largest(values []int) int {\n\tbest := values[0]\n\treturn be|st\n}»\n",
        Some("function `Largest` (lines 3–6)"),
    );
    check_block(
        Lang::Go,
        "package main\n\n«func (s *Stats) Average() float64 {\n\treturn s.sum / float64(s.|n)\n}»\n",
        Some("method `Average` (lines 3–5)"),
    );
    check_block(
        Lang::Go,
        "package main\n\n«type Stats struct {\n\tsum float64\n\tn   i|nt\n}»\n",
        Some("type `Stats` (lines 3–6)"),
    );
}

#[test]
fn rust_items_impls_and_attributes() {
    // The innermost `if` block is not a definition: the function is.
    check_block(
        Lang::Rust,
        "«fn main() {\n    let x = 1;\n    if x > 0 {\n        print!(\"{}\", x)|;\n    }\n}»\n",
        Some("function `main` (lines 1–6)"),
    );
    check_block(
        Lang::Rust,
        "impl Stats {\n«    #[inline]\n    pub fn average(&self) -> u32 {\n        self.sum / se|lf.n\n    }»\n}\n",
        Some("method `average` (lines 2–5)"),
    );
    check_block(
        Lang::Rust,
        "«impl Stats {\n    const LIMIT: u32 = |3;\n}»\n",
        Some("impl `Stats` (lines 1–3)"),
    );
    // A multi-line signature starts at the header; a doc comment is taken when selected from.
    check_block(
        Lang::Rust,
        "use std::fmt;\n\n«/// Adds.\n/// Twice|.\npub fn long(\n    a: u32,\n    b: u32,\n) -> u32 {\n    a + b\n}»\n",
        Some("function `long` (lines 3–10)"),
    );
    // A selection cutting through a function widens to it.
    check_block(
        Lang::Rust,
        "«fn average(values: &[i32]) -> i32 {\n    let mut sum = 0;\n    for i in ‹0..=values.len() {\n        sum += values[i];›\n    }\n    sum\n}»\n",
        Some("function `average` (lines 1–7)"),
    );
    // Two functions selected: no single definition holds them.
    check_block(Lang::Rust, "‹fn a() {}\nfn b() {}›\n", None);
    // Not whole lines when other code shares the line.
    check_block(
        Lang::Rust,
        "let v = 1; «fn f() { |}»\n",
        Some("function `f` (line 1)"),
    );
}

// ---- definitions ----------------------------------------------------------------------------

fn used(lang: Lang, src: &str, others: &[(&str, Lang, &str)]) -> Vec<String> {
    let f = fixture(src);
    let p = parsed(lang, &f.text);
    let sources: Vec<Source> = others
        .iter()
        .map(|(name, l, text)| Source {
            name: (*name).to_owned(),
            parsed: parsed(*l, text),
        })
        .collect();
    definitions_used(&p, f.selection, &sources)
        .into_iter()
        .map(|d| {
            let from = d.file.clone().unwrap_or_else(|| "here".into());
            let body = if d.full.is_some() { " +body" } else { "" };
            let within = d
                .container
                .as_ref()
                .map(|c| format!(" in {c}"))
                .unwrap_or_default();
            format!(
                "{} {} {}@{from}:{}{within}{body}: {}",
                d.label,
                d.name,
                d.kind_str(),
                d.line + 1,
                d.signature
            )
        })
        .collect()
}

impl Definition {
    fn kind_str(&self) -> &'static str {
        match self.kind {
            DefKind::Function => "fn",
            DefKind::Method => "method",
            DefKind::Type => "type",
            DefKind::Constant => "const",
        }
    }
}

#[test]
fn rust_definitions_from_the_file_and_other_documents() {
    let src = "const LIMIT: usize = 10;\n\nstruct Stats {\n    sum: u32,\n}\n\nimpl Stats {\n    fn add(&mut self, x: u32) {\n        self.sum += x;\n    }\n}\n\n‹fn run(s: &mut Stats) {\n    for i in 0..LIMIT {\n        s.add(helper(i));\n    }\n}›\n";
    let other = "pub fn helper(i: usize) -> u32 {\n    i as u32 * 2\n}\n";
    assert_eq!(
        used(
            Lang::Rust,
            src,
            &[
                ("src/util.rs", Lang::Rust, other),
                ("a.py", Lang::Python, "def helper(): pass\n")
            ]
        ),
        [
            "struct Stats type@here:3 +body: struct Stats",
            "constant LIMIT const@here:1 +body: const LIMIT: usize = 10;",
            "method add method@here:8 in impl `Stats` +body: fn add(&mut self, x: u32)",
            "function helper fn@src/util.rs:1 +body: pub fn helper(i: usize) -> u32",
        ]
    );
}

#[test]
fn python_javascript_typescript_and_go_definitions() {
    let py = "MAX = 3\n\nclass Cart:\n    def total(self):\n        return 0\n\ndef report(cart):\n‹    if cart.total() > MAX:\n        log(cart)›\n";
    assert_eq!(
        used(
            Lang::Python,
            py,
            &[("log.py", Lang::Python, "def log(x):\n    print(x)\n")]
        ),
        [
            "method total method@here:4 in class `Cart` +body: def total(self):",
            "constant MAX const@here:1 +body: MAX = 3",
            "function log fn@log.py:1 +body: def log(x):",
        ]
    );
    let js = "export const TAX = 0.2;\nfunction net(x) {\n  return x * (1 - TAX);\n}\n‹function gross(x) {\n  return net(x) + TAX;\n}›\n";
    assert_eq!(
        used(Lang::JavaScript, js, &[]),
        [
            "function net fn@here:2 +body: function net(x)",
            "constant TAX const@here:1 +body: export const TAX = 0.2;",
        ]
    );
    let ts = "‹function area(p: Point): number {\n  return p.x * p.y;\n}›\n";
    assert_eq!(
        used(
            Lang::TypeScript,
            ts,
            &[(
                "types.tsx",
                Lang::Tsx,
                "export interface Point {\n  x: number;\n  y: number;\n}\n"
            )]
        ),
        ["interface Point type@types.tsx:1 +body: export interface Point"]
    );
    let go = "package main\n\ntype Stats struct {\n\tn int\n}\n\nconst Limit = 3\n\nfunc (s *Stats) Add() {}\n\n‹func run(s *Stats) {\n\tif s.n < Limit {\n\t\ts.Add()\n\t}\n}›\n";
    assert_eq!(
        used(Lang::Go, go, &[]),
        [
            "type Stats type@here:3 +body: type Stats struct {\n\tn int\n}",
            "constant Limit const@here:7 +body: const Limit = 3",
            "method Add method@here:9 +body: func (s *Stats) Add()",
        ]
    );
}

#[test]
fn the_selection_itself_and_what_it_defines_are_left_out() {
    let src = "‹fn fact(n: u64) -> u64 {\n    if n == 0 { 1 } else { n * fact(n - 1) }\n}›\n";
    assert!(used(Lang::Rust, src, &[("b.rs", Lang::Rust, "fn fact() {}\n")]).is_empty());
    // A long definition comes as its signature only.
    let long: String = (0..40).map(|i| format!("    let x{i} = {i};\n")).collect();
    let src = format!("fn big() {{\n{long}}}\n‹fn caller() {{ big(); }}›\n");
    assert_eq!(
        used(Lang::Rust, &src, &[]),
        ["function big fn@here:1: fn big()"]
    );
}

// ---- verification ---------------------------------------------------------------------------

/// Verifies `code` in place of the fixture's «» range.
fn verdict(lang: Lang, src: &str, code: &str, expect: Expect) -> Result<(), String> {
    let f = fixture(&format!("|{src}"));
    let p = parsed(lang, &f.text);
    let range = f.expected.expect("fixture needs «»");
    verify(&p, range, code, &expect)
        .expect("parses")
        .map_err(|e| e.reason)
}

fn defines(name: &str) -> Expect {
    Expect::Defines(Some(name.into()))
}

#[test]
fn generated_code_must_parse_in_place_and_define_the_function() {
    let rs = "fn a() {}\n\n«fn largest(values: &[i32]) -> i32 {\n    todo!()\n}»\n\nfn b() {}\n";
    assert_eq!(
        verdict(
            Lang::Rust,
            rs,
            "fn largest(values: &[i32]) -> i32 {\n    *values.iter().max().unwrap()\n}",
            defines("largest")
        ),
        Ok(())
    );
    assert_eq!(
        verdict(Lang::Rust, rs, "fn largest(values: &[i32]) -> i32 {\n    let m = values.iter().max(;\n    *m.unwrap()\n}", defines("largest")),
        Err("did not parse: line 2 (unexpected `(`)".into())
    );
    assert_eq!(
        verdict(
            Lang::Rust,
            rs,
            "fn biggest(values: &[i32]) -> i32 {\n    0\n}",
            defines("largest")
        ),
        Err("defines `biggest` instead of `largest`".into())
    );
    // An unclosed brace parses inside the code but breaks what follows it.
    let unclosed = verdict(
        Lang::Rust,
        rs,
        "fn largest(values: &[i32]) -> i32 {\n    if true {\n        0\n}",
        defines("largest"),
    );
    assert!(
        unclosed
            .as_ref()
            .is_err_and(|r| r.contains("did not parse")),
        "{unclosed:?}"
    );

    let py = "class Stats:\n«    def average(self):\n        pass»\n";
    assert_eq!(
        verdict(
            Lang::Python,
            py,
            "    def average(self):\n        return sum(self.xs) / len(self.xs)",
            defines("average")
        ),
        Ok(())
    );
    let bad = verdict(
        Lang::Python,
        py,
        "    def average(self):\n        return (sum(self.xs) / len(self.xs)",
        defines("average"),
    );
    assert!(bad.is_err(), "{bad:?}");

    let js = "class Cart {\n«  total() {}»\n}\n";
    assert_eq!(
        verdict(
            Lang::JavaScript,
            js,
            "  total() {\n    return this.items.length;\n  }",
            defines("total")
        ),
        Ok(())
    );
    assert!(verdict(
        Lang::JavaScript,
        js,
        "  total() {\n    return this.items.length\n  ",
        defines("total")
    )
    .is_err());

    let ts = "«function area(p: Point): number {}»\n";
    assert_eq!(
        verdict(
            Lang::TypeScript,
            ts,
            "function area(p: Point): number {\n  return p.x * p.y;\n}",
            defines("area")
        ),
        Ok(())
    );
    assert!(verdict(
        Lang::TypeScript,
        ts,
        "function area(p: Point): number {\n  return p.x * ;\n}",
        defines("area")
    )
    .is_err());
    let tsx = "«const Badge = () => null;»\n";
    assert_eq!(
        verdict(
            Lang::Tsx,
            tsx,
            "const Badge = ({ n }: { n: number }) => <b>{n}</b>;",
            defines("Badge")
        ),
        Ok(())
    );
    assert!(verdict(
        Lang::Tsx,
        tsx,
        "const Badge = ({ n }: { n: number }) => <b>{n}</b;",
        defines("Badge")
    )
    .is_err());

    let go = "package main\n\n«func Largest(values []int) int {\n\treturn 0\n}»\n";
    assert_eq!(verdict(Lang::Go, go, "func Largest(values []int) int {\n\tbest := values[0]\n\tfor _, v := range values {\n\t\tif v > best {\n\t\t\tbest = v\n\t\t}\n\t}\n\treturn best\n}", defines("Largest")), Ok(()));
    assert!(verdict(
        Lang::Go,
        go,
        "func Largest(values []int) int {\n\tfor _, v := range values {\n\t\treturn v\n\t\n}",
        defines("Largest")
    )
    .is_err());
    // Prose instead of code.
    assert!(verdict(
        Lang::Go,
        go,
        "Sure! Here is the function you asked for.",
        defines("Largest")
    )
    .is_err());
    // Without a name, any function will do.
    assert_eq!(
        verdict(Lang::Go, go, "func Other() {}", Expect::Defines(None)),
        Ok(())
    );
    assert_eq!(
        verdict(Lang::Go, go, "var x = 1", Expect::Defines(None)),
        Err("defines no function".into())
    );
}

#[test]
fn fixes_are_checked_in_place_and_old_errors_do_not_count() {
    let rs = "fn average(values: &[i32]) -> i32 {\n    let mut sum = 0;\n«    for i in 0..=values.len() {\n        sum += values[i];»\n    }\n    sum\n}\n";
    // A fragment that only makes sense where it stands.
    assert_eq!(
        verdict(
            Lang::Rust,
            rs,
            "    for i in 0..values.len() {\n        sum += values[i];",
            Expect::Parses
        ),
        Ok(())
    );
    assert!(verdict(
        Lang::Rust,
        rs,
        "    for i in 0..values.len() {\n        sum += values[i;",
        Expect::Parses
    )
    .is_err());
    // The document was already broken elsewhere: only what the fix brings counts.
    let broken = "fn other( {\n}\n\nfn f() {\n«    let x = 1»\n}\n";
    assert_eq!(
        verdict(Lang::Rust, broken, "    let x = 2;", Expect::Parses),
        Ok(())
    );
    // A fix that repairs the selection is fine.
    let stub = "def f(x):\n«    return (x»\n";
    assert_eq!(
        verdict(Lang::Python, stub, "    return (x)", Expect::Parses),
        Ok(())
    );
}

#[test]
fn the_better_of_two_failures_defines_the_function_then_has_fewer_errors() {
    let f = |defines, errors| Failure {
        reason: String::new(),
        errors,
        defines,
    };
    assert!(f(true, 3).better_than(&f(false, 0)));
    assert!(f(false, 1).better_than(&f(false, 2)));
    assert!(!f(false, 2).better_than(&f(false, 2)));
}

#[test]
fn widening_what_was_widened_gives_the_same_block() {
    // The code-action menu widens a cursor; the command gets that range and must name it.
    for (lang, src) in [
        (Lang::Rust, "impl Stats {\n    #[inline]\n    pub fn average(&self) -> u32 {\n        self.sum / se|lf.n\n    }\n}\n"),
        (Lang::Tsx, "export const Badge = ({ count }: { count: number }) => {\n  return <span>{co|unt}</span>;\n};\n"),
        (Lang::Python, "class A:\n    @property\n    def b(self):\n        return se|lf.c\n"),
        (Lang::Rust, "/// Doc.\nfn f() {\n    |1\n}\n"),
        (Lang::JavaScript, "app.get('/', (req, res) => {\n  items.forEach(item => {\n    res.wri|te(s);\n  });\n});\n"),
    ] {
        let f = fixture(src);
        let p = parsed(lang, &f.text);
        let first = enclosing_block(&p, f.selection).expect("a block");
        let again = enclosing_block(&p, first.chars.clone()).expect("the same block");
        assert_eq!(first, again, "{src}");
    }
}

#[test]
fn the_definitions_index_is_made_once_per_tree_and_shared_by_its_clones() {
    let src = "fn helper() -> u32 {\n    2\n}\n\n‹fn run() -> u32 {\n    helper()\n}›\n";
    let f = fixture(src);
    let p = parsed(Lang::Rust, &f.text);
    let other = parsed(Lang::Rust, "pub fn unused() {}\n");
    let sources = [Source {
        name: "src/other.rs".into(),
        parsed: other.clone(),
    }];
    let first = definitions_used(&p, f.selection.clone(), &sources);
    assert_eq!(first.len(), 1, "{first:?}");
    // The clone shares what the first call made, and answers the same.
    let clone = p.clone();
    assert_eq!(
        definitions_used(&clone, f.selection.clone(), &sources),
        first
    );
    assert_eq!(
        clone
            .derived(|| crate::syntax::defs::index(&p))
            .map(Vec::len),
        Some(2),
        "the memo holds the whole file's index"
    );
    // A tree of a changed text starts without one: it quotes the new text.
    let changed = parsed(Lang::Rust, &f.text.to_string().replace("2\n", "3\n"));
    let now = definitions_used(&changed, f.selection, &sources);
    assert_eq!(
        now[0].full.as_deref(),
        Some("fn helper() -> u32 {\n    3\n}")
    );
}

#[test]
fn a_check_is_remembered_per_tree_and_forgotten_with_it() {
    let p = parsed(Lang::Rust, "fn a() {}\nfn b() { 1 }\n");
    let key = blake3::hash(b"some input");
    let calls = std::cell::Cell::new(0);
    let make = || {
        calls.set(calls.get() + 1);
        42u32
    };
    assert_eq!(p.memo(key, make), 42);
    assert_eq!(p.clone().memo(key, make), 42, "a clone shares the memo");
    assert_eq!(calls.get(), 1);
    // A tree of the same text made anew (another version) knows nothing yet.
    let again = parsed(Lang::Rust, "fn a() {}\nfn b() { 1 }\n");
    assert_eq!(again.memo(key, make), 42);
    assert_eq!(calls.get(), 2);
    // The same verdict either way, from the memo or not.
    let fix = "fn b() { 2 }";
    let range = 10..22;
    let first = verify(&p, range.clone(), fix, &Expect::Parses);
    assert_eq!(first, verify(&p, range.clone(), fix, &Expect::Parses));
    assert_eq!(first, Some(Ok(())));
    let broken = verify(&p, range, "fn b() { 2", &Expect::Parses);
    assert!(matches!(broken, Some(Err(_))), "{broken:?}");
}
