//! How a sender spreads many calls of one kind (simulations, receipts,
//! broadcasts) over JSON-RPC batches: enough at once to keep a node busy,
//! few enough not to queue the sender's other readings behind them.

/// JSON-RPC batches a sender has in flight at once (simulations,
/// broadcasts, receipts): enough to keep a node's cores busy, few enough
/// that the node does not queue the sender's next readings behind a flood.
pub(super) const BATCHES_AT_ONCE: usize = 4;

/// Runs `work` on `items` in chunks of `size` (one JSON-RPC batch each),
/// [`BATCHES_AT_ONCE`] at a time, the next starting as soon as one ends;
/// each chunk with its result, in order.
pub(super) async fn in_batches<'a, T, R, F, Fut>(
    items: &'a [T],
    size: usize,
    work: F,
) -> Vec<(&'a [T], R)>
where
    F: FnMut(&'a [T]) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    use futures::StreamExt;
    let chunks = items.chunks(size.max(1));
    // The futures are made first (none starts until polled): a stream
    // that maps with the closure itself is not `Send` for every lifetime,
    // which the sender task needs.
    let futures: Vec<Fut> = chunks.clone().map(work).collect();
    let results: Vec<R> = futures::stream::iter(futures)
        .buffered(BATCHES_AT_ONCE)
        .collect()
        .await;
    chunks.zip(results).collect()
}
