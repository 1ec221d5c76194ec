//! The languages with a grammar, and what their node kinds mean to us: definitions, closures, names.

use tree_sitter::Node;

/// A language codetier has a tree-sitter grammar for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    Python,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
    Rust,
}

/// What a definition node is, as the user would call it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DefKind {
    Function,
    Method,
    /// A class, struct, enum, trait, interface, impl block or type alias.
    Type,
    /// A constant, static or module-level binding.
    Constant,
}

impl Lang {
    pub const ALL: [Lang; 6] = [
        Lang::Python,
        Lang::JavaScript,
        Lang::TypeScript,
        Lang::Tsx,
        Lang::Go,
        Lang::Rust,
    ];

    /// The grammar for an LSP language id (`python`, `typescriptreact`, …); `None` when there
    /// is none, and the callers keep their heuristics.
    pub fn from_language_id(id: &str) -> Option<Lang> {
        match id.trim().to_ascii_lowercase().as_str() {
            "python" | "py" => Some(Lang::Python),
            "javascript" | "javascriptreact" | "js" | "jsx" => Some(Lang::JavaScript),
            "typescript" | "ts" => Some(Lang::TypeScript),
            "typescriptreact" | "tsx" => Some(Lang::Tsx),
            "go" | "golang" => Some(Lang::Go),
            "rust" | "rs" => Some(Lang::Rust),
            _ => None,
        }
    }

    /// The language's name for people.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Python => "Python",
            Lang::JavaScript => "JavaScript",
            Lang::TypeScript => "TypeScript",
            Lang::Tsx => "TSX",
            Lang::Go => "Go",
            Lang::Rust => "Rust",
        }
    }

    /// Whether definitions in a document of `other` can be used from one in `self`: the same
    /// language, TypeScript and TSX counting as one.
    pub fn shares_definitions_with(self, other: Lang) -> bool {
        let family = |l: Lang| match l {
            Lang::Tsx => Lang::TypeScript,
            l => l,
        };
        family(self) == family(other)
    }

    pub(crate) fn grammar(self) -> tree_sitter::Language {
        match self {
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
        }
    }

    fn is_js_family(self) -> bool {
        matches!(self, Lang::JavaScript | Lang::TypeScript | Lang::Tsx)
    }

    /// Named function-like definitions (a closure is not one: see [`Lang::is_closure`]).
    pub(crate) fn is_function(self, kind: &str) -> bool {
        match self {
            Lang::Rust => matches!(kind, "function_item" | "function_signature_item"),
            Lang::Python => kind == "function_definition",
            Lang::Go => matches!(kind, "function_declaration" | "method_declaration"),
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx => matches!(
                kind,
                "function_declaration"
                    | "generator_function_declaration"
                    | "method_definition"
                    | "function_signature"
                    | "method_signature"
                    | "abstract_method_signature"
            ),
        }
    }

    /// Anonymous functions: they count as a block only when they span several lines.
    pub(crate) fn is_closure(self, kind: &str) -> bool {
        match self {
            Lang::Rust => kind == "closure_expression",
            Lang::Python => kind == "lambda",
            Lang::Go => kind == "func_literal",
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx => matches!(
                kind,
                "arrow_function" | "function_expression" | "function" | "generator_function"
            ),
        }
    }

    /// Class-like definitions: classes, structs, enums, traits, interfaces, impl blocks.
    pub(crate) fn is_class(self, kind: &str) -> bool {
        match self {
            Lang::Rust => matches!(
                kind,
                "impl_item" | "trait_item" | "struct_item" | "enum_item" | "union_item"
            ),
            Lang::Python => kind == "class_definition",
            Lang::Go => kind == "type_declaration",
            Lang::JavaScript => matches!(kind, "class_declaration" | "class"),
            Lang::TypeScript | Lang::Tsx => matches!(
                kind,
                "class_declaration"
                    | "class"
                    | "abstract_class_declaration"
                    | "interface_declaration"
                    | "enum_declaration"
            ),
        }
    }

    /// Nodes that wrap a definition and belong to it: decorators, `export`.
    pub(crate) fn is_wrapper(self, kind: &str) -> bool {
        match self {
            Lang::Python => kind == "decorated_definition",
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx => kind == "export_statement",
            Lang::Rust | Lang::Go => false,
        }
    }

    /// Leaves that name something the code uses.
    pub(crate) fn is_name(self, kind: &str) -> bool {
        match self {
            Lang::Rust => matches!(kind, "identifier" | "type_identifier" | "field_identifier"),
            Lang::Python => kind == "identifier",
            Lang::Go => matches!(kind, "identifier" | "type_identifier" | "field_identifier"),
            Lang::JavaScript => matches!(kind, "identifier" | "property_identifier"),
            Lang::TypeScript | Lang::Tsx => {
                matches!(
                    kind,
                    "identifier" | "property_identifier" | "type_identifier"
                )
            }
        }
    }

    /// Nodes whose text is a comment.
    pub(crate) fn is_comment(self, kind: &str) -> bool {
        matches!(kind, "comment" | "line_comment" | "block_comment")
    }

    /// Rust's `#[…]` attributes, which stand before the item they belong to.
    pub(crate) fn is_attribute(self, kind: &str) -> bool {
        self == Lang::Rust && kind == "attribute_item"
    }

    /// The kind of definition `node` is, if it is one, with the names it defines.
    ///
    /// Besides functions and classes: Rust `const`/`static`/`type`, Go `type`/`const`/`var`
    /// specs, TypeScript `type` aliases, and module-level bindings (`X = 1` in Python,
    /// `const X = …` in JavaScript, where an arrow function counts as a function).
    ///
    /// Long on purpose: one table over the grammars' node kinds, a language per arm.
    pub(crate) fn definition(
        self,
        node: Node,
        source: &dyn Fn(Node) -> String,
    ) -> Option<(DefKind, Vec<String>)> {
        let kind = node.kind();
        let named = |field: &str| {
            node.child_by_field_name(field)
                .map(|n| vec![source(n)])
                .unwrap_or_default()
        };
        if self.is_function(kind) {
            let method = kind.contains("method") || self.inside_class(node);
            let k = if method {
                DefKind::Method
            } else {
                DefKind::Function
            };
            return Some((k, named("name")));
        }
        if self.is_class(kind) {
            let names = match (self, kind) {
                (Lang::Rust, "impl_item") => named("type"),
                (Lang::Go, "type_declaration") => {
                    children_names(node, &["type_spec", "type_alias"], source)
                }
                _ => named("name"),
            };
            return Some((DefKind::Type, names));
        }
        let top = node.parent().is_some_and(|p| {
            p.parent().is_none()
                || self.is_wrapper(p.kind()) && p.parent().is_some_and(|g| g.parent().is_none())
        });
        match (self, kind) {
            (Lang::Rust, "const_item" | "static_item") => Some((DefKind::Constant, named("name"))),
            (Lang::Rust, "type_item") => Some((DefKind::Type, named("name"))),
            (Lang::Go, "const_declaration" | "var_declaration") if top => {
                let mut names = Vec::new();
                let mut stack = vec![node];
                while let Some(n) = stack.pop() {
                    let mut cursor = n.walk();
                    for child in n.named_children(&mut cursor) {
                        match child.kind() {
                            "const_spec" | "var_spec" => {
                                let mut c = child.walk();
                                for name in child.children_by_field_name("name", &mut c) {
                                    names.push(source(name));
                                }
                            }
                            "var_spec_list" => stack.push(child),
                            _ => {}
                        }
                    }
                }
                Some((DefKind::Constant, names))
            }
            (Lang::TypeScript | Lang::Tsx, "type_alias_declaration") => {
                Some((DefKind::Type, named("name")))
            }
            (Lang::Python, "expression_statement") if top => {
                let assignment = node.named_child(0).filter(|c| c.kind() == "assignment")?;
                let left = assignment
                    .child_by_field_name("left")
                    .filter(|l| l.kind() == "identifier")?;
                Some((DefKind::Constant, vec![source(left)]))
            }
            (_, "lexical_declaration" | "variable_declaration") if self.is_js_family() && top => {
                let mut names = Vec::new();
                let mut function = false;
                let mut cursor = node.walk();
                for declarator in node.named_children(&mut cursor) {
                    if declarator.kind() != "variable_declarator" {
                        continue;
                    }
                    if let Some(name) = declarator
                        .child_by_field_name("name")
                        .filter(|n| n.kind() == "identifier")
                    {
                        names.push(source(name));
                    }
                    function |= declarator
                        .child_by_field_name("value")
                        .is_some_and(|v| self.is_closure(v.kind()));
                }
                let k = if function {
                    DefKind::Function
                } else {
                    DefKind::Constant
                };
                (!names.is_empty()).then_some((k, names))
            }
            _ => None,
        }
    }

    /// Whether a function node sits directly in a class-like body (so it is a method).
    fn inside_class(self, node: Node) -> bool {
        let mut up = node.parent();
        // The body (`declaration_list`, `block`, `class_body`), possibly behind a decorator.
        while let Some(p) = up {
            if self.is_wrapper(p.kind()) {
                up = p.parent();
                continue;
            }
            break;
        }
        up.and_then(|body| body.parent())
            .is_some_and(|owner| self.is_class(owner.kind()))
    }

    /// How to call a block of this node kind in a message: `function`, `method`, `impl`, ….
    pub(crate) fn label(self, kind: &str, def: DefKind) -> &'static str {
        match kind {
            "impl_item" => "impl",
            "trait_item" => "trait",
            "struct_item" => "struct",
            "enum_item" | "enum_declaration" => "enum",
            "union_item" => "union",
            "interface_declaration" => "interface",
            "type_declaration" => "type",
            "class_definition" | "class_declaration" | "class" | "abstract_class_declaration" => {
                "class"
            }
            _ if self.is_closure(kind) => "function",
            _ => match def {
                DefKind::Function => "function",
                DefKind::Method => "method",
                DefKind::Type => "type",
                DefKind::Constant => "constant",
            },
        }
    }
}

fn children_names(node: Node, kinds: &[&str], source: &dyn Fn(Node) -> String) -> Vec<String> {
    let mut cursor = node.walk();
    node.named_children(&mut cursor)
        .filter(|c| kinds.contains(&c.kind()))
        .filter_map(|c| c.child_by_field_name("name"))
        .map(source)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_ids_map_to_grammars() {
        for (id, lang) in [
            ("python", Lang::Python),
            ("javascript", Lang::JavaScript),
            ("javascriptreact", Lang::JavaScript),
            ("typescript", Lang::TypeScript),
            ("typescriptreact", Lang::Tsx),
            ("go", Lang::Go),
            ("Rust", Lang::Rust),
        ] {
            assert_eq!(Lang::from_language_id(id), Some(lang), "{id}");
        }
        for id in ["plaintext", "c", "markdown", ""] {
            assert_eq!(Lang::from_language_id(id), None, "{id}");
        }
        assert!(Lang::Tsx.shares_definitions_with(Lang::TypeScript));
        assert!(!Lang::JavaScript.shares_definitions_with(Lang::TypeScript));
    }

    #[test]
    fn every_grammar_loads_into_a_parser() {
        for lang in Lang::ALL {
            let mut parser = tree_sitter::Parser::new();
            assert!(parser.set_language(&lang.grammar()).is_ok(), "{lang:?}");
        }
    }
}
