//! How many fields a document expands to once every fragment spread is replaced by its fragment.
//! Validation and execution walk the expanded document, so a 1 KB document whose fragments each
//! spread the next one twice costs 2^n; counting first, with one memoised size per fragment, costs
//! one pass over the document and refuses the bomb before anything expands it.
use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// Fields written directly in a selection set (at any nesting, inline fragments included) and the
/// fragments it spreads, once per spread. Iterative: depth is the caller's limit, not the stack's.
fn direct(set: &SelectionSet) -> (u64, Vec<&str>) {
    let (mut fields, mut spreads) = (0u64, Vec::new());
    let mut pending = vec![set];
    while let Some(set) = pending.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    fields = fields.saturating_add(1);
                    pending.push(&f.node.selection_set.node);
                }
                Selection::InlineFragment(i) => pending.push(&i.node.selection_set.node),
                Selection::FragmentSpread(s) => spreads.push(s.node.fragment_name.node.as_str()),
            }
        }
    }
    (fields, spreads)
}

enum Size {
    /// On the current path: a spread back to it is a cycle, which validation refuses; it adds 0.
    Counting,
    Done(u64),
}

struct Fragments<'a> {
    direct: HashMap<&'a str, (u64, Vec<&'a str>)>,
    sizes: HashMap<&'a str, Size>,
}

impl<'a> Fragments<'a> {
    /// Expanded size of a fragment: memoised, cycle-safe, with an explicit stack (a chain of
    /// thousands of fragments must not overflow ours). Unknown fragments add 0 (validation
    /// refuses them).
    fn size(&mut self, name: &'a str) -> u64 {
        match self.sizes.get(name) {
            Some(Size::Done(n)) => return *n,
            Some(Size::Counting) => return 0,
            None => {}
        }
        let Some((own, _)) = self.direct.get(name) else { return 0 };
        self.sizes.insert(name, Size::Counting);
        // (fragment, index of its next spread, fields so far)
        let mut stack = vec![(name, 0usize, *own)];
        while let Some(&(current, next, _)) = stack.last() {
            let child = self.direct.get(current).and_then(|(_, spreads)| spreads.get(next)).copied();
            let Some(child) = child else {
                if let Some((done, _, total)) = stack.pop() {
                    self.sizes.insert(done, Size::Done(total));
                    if let Some(parent) = stack.last_mut() {
                        parent.2 = parent.2.saturating_add(total);
                    }
                }
                continue;
            };
            if let Some(top) = stack.last_mut() {
                top.1 += 1;
            }
            let add = match self.sizes.get(child) {
                Some(Size::Done(n)) => *n,
                Some(Size::Counting) => 0,
                None => match self.direct.get(child) {
                    Some((own, _)) => {
                        self.sizes.insert(child, Size::Counting);
                        stack.push((child, 0, *own));
                        continue;
                    }
                    None => 0,
                },
            };
            if let Some(top) = stack.last_mut() {
                top.2 = top.2.saturating_add(add);
            }
        }
        match self.sizes.get(name) {
            Some(Size::Done(n)) => *n,
            _ => 0,
        }
    }
}

/// Fields of the document with every spread expanded: all operations together, or the largest
/// fragment if that is more (an unused fragment is invalid, but validation would still expand it).
pub fn expanded_fields(doc: &ExecutableDocument) -> u64 {
    let mut fragments = Fragments {
        direct: doc.fragments.iter().map(|(name, f)| (name.as_str(), direct(&f.node.selection_set.node))).collect(),
        sizes: HashMap::new(),
    };
    let mut operations = 0u64;
    for (_, op) in doc.operations.iter() {
        let (own, spreads) = direct(&op.node.selection_set.node);
        let spread = spreads.iter().fold(0u64, |sum, name| sum.saturating_add(fragments.size(name)));
        operations = operations.saturating_add(own).saturating_add(spread);
    }
    let names: Vec<&str> = fragments.direct.keys().copied().collect();
    names.into_iter().map(|name| fragments.size(name)).fold(operations, u64::max)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::expanded_fields;

    fn count(q: &str) -> u64 {
        expanded_fields(&async_graphql::parser::parse_query(q).unwrap())
    }

    /// Fragment i spreads fragment i+1 twice; the last one selects one field.
    pub(crate) fn bomb(n: usize) -> String {
        let mut q = String::from("query { ...F0 }\n");
        for i in 0..n {
            q.push_str(&format!("fragment F{i} on QueryRoot {{ ...F{next} ...F{next} }}\n", next = i + 1));
        }
        q.push_str(&format!("fragment F{n} on QueryRoot {{ __typename }}\n"));
        q
    }

    #[test]
    fn plain_fields_count_once_each() {
        assert_eq!(count("{ a b { c d { e } } }"), 5);
        assert_eq!(count("{ a ... on X { b c } }"), 3);
        assert_eq!(count("query A { a } query B { b c }"), 3);
    }

    #[test]
    fn spreads_count_with_multiplicity() {
        // F is spread three times (twice at the top, once nested): 3 x 2 fields + a.
        assert_eq!(count("{ ...F ...F a { ...F } } fragment F on T { b c }"), 7);
        // Shared fragment below another: G = 2, F = 1 + 2G = 5, op = F + G = 7.
        assert_eq!(count("{ ...F ...G } fragment F on T { x ...G ...G } fragment G on T { y z }"), 7);
    }

    #[test]
    fn a_bomb_is_counted_without_expanding_it() {
        let started = std::time::Instant::now();
        assert_eq!(count(&bomb(23)), 1 << 23);
        // Saturates instead of overflowing.
        assert_eq!(count(&bomb(80)), u64::MAX);
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
    }

    #[test]
    fn cycles_and_unknown_fragments_do_not_loop() {
        assert_eq!(count("{ ...A } fragment A on T { a ...B } fragment B on T { b ...A }"), 2);
        assert_eq!(count("{ ...A } fragment A on T { a ...A ...A }"), 1);
        assert_eq!(count("{ ...Missing x }"), 1);
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let n = 50_000;
        let mut q = String::from("{ ...F0 }\n");
        for i in 0..n {
            q.push_str(&format!("fragment F{i} on T {{ a ...F{} }}\n", i + 1));
        }
        assert_eq!(count(&q), n as u64);
    }
}
