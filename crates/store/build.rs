//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds
//! the directory's files but cannot tell cargo to watch it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
