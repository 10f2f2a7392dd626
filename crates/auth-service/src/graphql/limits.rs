//! Per-operation limits of `/graphql` beyond depth: a cap on root fields (aliases included),
//! checked right after parsing, so a request of 1,700 aliased `verifyToken` (or `tokenAuth`)
//! is refused with one clear error before any field runs. async-graphql's complexity limit
//! (every selected field counts, at every depth) is set beside it in [`super::schema`].

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, SelectionSet};
use async_graphql::{Name, ServerError, ServerResult, Variables};

/// At most this many root fields (aliases and fragments included) in any operation.
#[derive(Debug, Clone, Copy)]
pub struct RootFieldLimit(pub usize);

impl ExtensionFactory for RootFieldLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

#[async_trait::async_trait]
impl Extension for RootFieldLimit {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let most = match &document.operations {
            DocumentOperations::Single(op) => root_fields(&document, &op.node.selection_set.node),
            DocumentOperations::Multiple(ops) => {
                ops.values().map(|op| root_fields(&document, &op.node.selection_set.node)).max().unwrap_or(0)
            }
        };
        if most > self.0 {
            return Err(ServerError::new(
                format!("Too many root fields in one operation: {most} (at most {}).", self.0),
                None,
            ));
        }
        Ok(document)
    }
}

/// Fields the root selection set selects, counting through fragments (each fragment at most
/// once per path, so a cyclic spread, which validation refuses later, cannot loop).
fn root_fields(document: &ExecutableDocument, set: &SelectionSet) -> usize {
    fn count<'a>(document: &'a ExecutableDocument, set: &'a SelectionSet, seen: &mut HashSet<&'a Name>) -> usize {
        use async_graphql::parser::types::Selection;
        let mut n = 0usize;
        for item in &set.items {
            n = n.saturating_add(match &item.node {
                Selection::Field(_) => 1,
                Selection::InlineFragment(inline) => count(document, &inline.node.selection_set.node, seen),
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    match document.fragments.get(name) {
                        Some(fragment) if seen.insert(name) => {
                            let inner = count(document, &fragment.node.selection_set.node, seen);
                            seen.remove(name);
                            inner
                        }
                        _ => 0,
                    }
                }
            });
        }
        n
    }
    count(document, set, &mut HashSet::new())
}
