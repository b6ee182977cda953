//! Block headers: the head, the `safe`/`finalized` tags, and batches of
//! headers by number for checking that logs belong to the canonical chain.

use alloy_primitives::{B256, U64};
use ethgate_core::BlockRef;
use serde::Deserialize;
use serde_json::json;

use crate::pool::{ChainError, EndpointPool};

/// Largest JSON-RPC batch sent at once; providers cap batch sizes.
const BATCH: usize = 200;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    number: U64,
    hash: B256,
    parent_hash: B256,
    timestamp: U64,
}

impl From<Header> for BlockRef {
    fn from(h: Header) -> Self {
        BlockRef {
            number: h.number.to(),
            hash: h.hash,
            parent_hash: h.parent_hash,
            timestamp: h.timestamp.to(),
        }
    }
}

/// Which block to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockTag {
    /// The endpoint's head.
    Latest,
    /// The node's `safe` block.
    Safe,
    /// The node's `finalized` block.
    Finalized,
    /// A block by height.
    Number(u64),
}

impl BlockTag {
    fn param(self) -> String {
        match self {
            BlockTag::Latest => "latest".into(),
            BlockTag::Safe => "safe".into(),
            BlockTag::Finalized => "finalized".into(),
            BlockTag::Number(n) => format!("{n:#x}"),
        }
    }
}

/// The endpoint's head height.
pub async fn block_number(pool: &EndpointPool) -> Result<u64, ChainError> {
    let n: U64 = pool.call("eth_blockNumber", json!([])).await?;
    Ok(n.to())
}

/// One header, `None` if the node doesn't have that block.
pub async fn header(pool: &EndpointPool, tag: BlockTag) -> Result<Option<BlockRef>, ChainError> {
    let h: Option<Header> = pool
        .call("eth_getBlockByNumber", json!([tag.param(), false]))
        .await?;
    Ok(h.map(Into::into))
}

/// The header with this hash, canonical or not (`None`: the node does
/// not know it). Walking parent links with it names the canonical chain
/// below a head exactly as that head sees it.
pub async fn header_by_hash(
    pool: &EndpointPool,
    hash: alloy_primitives::B256,
) -> Result<Option<BlockRef>, ChainError> {
    let h: Option<Header> = pool
        .call("eth_getBlockByHash", json!([hash, false]))
        .await?;
    Ok(h.map(Into::into))
}

/// Headers of the given heights, in the same order, fetched in batches.
pub async fn headers(
    pool: &EndpointPool,
    numbers: &[u64],
) -> Result<Vec<Option<BlockRef>>, ChainError> {
    let mut out = Vec::with_capacity(numbers.len());
    for chunk in numbers.chunks(BATCH) {
        let calls: Vec<(&str, serde_json::Value)> = chunk
            .iter()
            .map(|n| {
                (
                    "eth_getBlockByNumber",
                    json!([BlockTag::Number(*n).param(), false]),
                )
            })
            .collect();
        for r in pool.batch::<Option<Header>>(&calls).await? {
            out.push(r?.map(Into::into));
        }
    }
    Ok(out)
}
