//! Two processes opening a new database at once (here: two pools) both
//! end up with a migrated store; before the migrator retried, the loser of
//! the race failed with "table … already exists". On the backend
//! `ETHGATE_TEST_STORE` names (PostgreSQL's migrator locks instead).

use ethgate_store::Store;
use ethgate_store::scratch::Scratch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_of_a_new_database_both_succeed() {
    for _ in 0..20 {
        let scratch = Scratch::from_env().await;
        let url = scratch.url();
        let (a, b) = tokio::join!(Store::connect(url), Store::connect(url));
        let (a, b) = (a.expect("first opens"), b.expect("second opens"));
        a.ensure_stream("s", 1).await.expect("usable");
        assert!(b.stream("s").await.expect("usable").is_some());
    }
}
