//! Group commit for PostgreSQL: LOCKs, UNLOCKs and POSTs on different states that arrive together
//! are decided and written in one transaction, as the SQLite writer does with its groups.
//!
//! A cycle of Terraform's (lock, write, unlock) is three durable transactions where the `pg`
//! backend's is one; run one by one, their statements and commits cost the database more CPU
//! than a busy machine has. In a group, one statement takes every state's row and chain head,
//! the decisions are made here ([`decide`], the same rules as everywhere: `storage::rules`), and
//! every write goes out with a single `COMMIT`: two round trips and one WAL flush for the group.
//!
//! What does not change: a caller hears "done" only after the commit; every operation's audit
//! row is in the transaction of its change; rows are locked with `FOR UPDATE` in name order (chain
//! heads after their state's row), so replicas and concurrent groups queue on the same locks and
//! cannot deadlock; a group holds each state at most once. If the group's transaction fails,
//! every operation in it fails (none is applied) and its caller gets the error.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_postgres::types::ToSql;

use super::{insert_audit_with, pool_get_err, row_from, set_lock, Prepared, Txn};
use crate::audit::AuditEvent;
use crate::audit_chain::{self, ChainKeys};
use crate::storage::rules::{self, StateRow};
use crate::storage::*;

// Most operations in one group: bounds the statements sent with one COMMIT.
const MAX_GROUP: usize = 64;
// States known to have a row (rows are never deleted), so a group need not make them; past this
// many the set starts again (it only saves a statement).
const KNOWN_ROWS: usize = 100_000;

/// Names of states whose row exists.
type Known = std::sync::Mutex<HashSet<String>>;

/// An operation a group can carry.
pub(super) enum Op {
    Lock(LockRequest),
    Unlock(UnlockRequest),
    Put(PutRequest),
}

/// What an [`Op`] did.
pub(super) enum Done {
    Lock(LockOutcome),
    Unlock(UnlockOutcome),
    Put(PutOutcome),
}

type Answer = Result<(Done, AuditEvent), StorageError>;

struct Pending {
    name: String,
    op: Op,
    audit: AuditDraft,
    reply: oneshot::Sender<Answer>,
}

/// The queue of operations waiting for a group, and the task that forms and runs the groups.
pub(super) struct Groups {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Groups {
    /// Starts the task; at most `in_flight` groups run at once (each on its own connection).
    pub(super) fn start(pool: Pool, keys: ChainKeys, in_flight: usize) -> Groups {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(form_groups(pool, Arc::new(keys), pending, in_flight.max(1)));
        Groups { queue }
    }

    /// Runs `op` on the state `name` in the next group; answers after its commit.
    pub(super) async fn run(&self, name: &str, op: Op, audit: AuditDraft) -> Answer {
        let gone = || StorageError::Commit("the PostgreSQL group writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        self.queue.send(Pending { name: name.to_string(), op, audit, reply }).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

// Takes what is queued when a slot is free: while groups are in flight, operations gather, and the
// next group carries them all. An operation on a state already in the group waits for the next.
async fn form_groups(
    pool: Pool,
    keys: Arc<ChainKeys>,
    mut pending: mpsc::UnboundedReceiver<Pending>,
    in_flight: usize,
) {
    let slots = Arc::new(Semaphore::new(in_flight));
    let known: Arc<Known> = Arc::default();
    let mut carried: VecDeque<Pending> = VecDeque::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let first = match carried.pop_front() {
            Some(p) => p,
            None => match pending.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut names = HashSet::from([first.name.clone()]);
        let mut group = vec![first];
        let mut next = VecDeque::new();
        let queued = std::iter::from_fn(|| carried.pop_front()).chain(std::iter::from_fn(|| pending.try_recv().ok()));
        for p in queued {
            if group.len() < MAX_GROUP && names.insert(p.name.clone()) {
                group.push(p);
            } else {
                next.push_back(p);
            }
            if group.len() == MAX_GROUP {
                break;
            }
        }
        next.extend(carried.drain(..));
        carried = next;
        let (pool, keys, known) = (pool.clone(), keys.clone(), known.clone());
        tokio::spawn(async move {
            run_group(&pool, &keys, &known, group).await;
            drop(slot);
        });
    }
}

async fn run_group(pool: &Pool, keys: &ChainKeys, known: &Known, mut group: Vec<Pending>) {
    group.sort_by(|a, b| a.name.cmp(&b.name));
    let mut replies = Vec::with_capacity(group.len());
    let mut work = Vec::with_capacity(group.len());
    for p in group {
        replies.push(p.reply);
        work.push((p.name, p.op, p.audit));
    }
    match commit_group(pool, keys, known, work).await {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(e) => {
            let message = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(StorageError::Commit(message.clone())));
            }
        }
    }
}

/// What an operation writes, besides its audit row.
enum Effect {
    None,
    SetLock { lock: Option<LockRequest>, released: Option<(String, String)> },
    Store { meta: VersionMeta, body: Vec<u8>, prune_below: i64 },
}

/// An operation decided against its state's row (the rules of `storage::rules`).
fn decide(row: &StateRow, op: Op, audit: AuditDraft) -> (Done, Effect, AuditEvent) {
    match op {
        Op::Lock(req) => {
            let value = rules::decide_lock(row, &req);
            let event = audit.finish(rules::lock_verdict(&value));
            let effect = if value == LockOutcome::Acquired {
                Effect::SetLock { lock: Some(req), released: None }
            } else {
                Effect::None
            };
            (Done::Lock(value), effect, event)
        }
        Op::Unlock(req) => {
            let value = rules::decide_unlock(row, &req);
            let event = audit.finish(rules::unlock_verdict(&value));
            let effect = match &value {
                UnlockOutcome::Released => {
                    Effect::SetLock { lock: None, released: req.id.clone().map(|id| (id, req.user.clone())) }
                }
                UnlockOutcome::ForceReleased(_) => Effect::SetLock { lock: None, released: None },
                _ => Effect::None,
            };
            (Done::Unlock(value), effect, event)
        }
        Op::Put(mut req) => {
            let value = rules::decide_put(row, &req);
            let event = audit.finish(rules::put_verdict(&value));
            let effect = match &value {
                PutOutcome::Stored(m) => {
                    let body = std::mem::take(&mut req.body);
                    let body = match req.seal.take() {
                        Some(sealer) => sealer.seal(m.version, body),
                        None => body,
                    };
                    // Versions at or below 0 do not exist, so "keep all" prunes nothing.
                    let v = m.version as i64;
                    let prune_below = if req.keep_versions > 0 { v - req.keep_versions as i64 } else { 0 };
                    Effect::Store { meta: m.clone(), body, prune_below }
                }
                _ => Effect::None,
            };
            (Done::Put(value), effect, event)
        }
    }
}

type Write<'a> = Pin<Box<dyn Future<Output = Result<Option<i64>, StorageError>> + Send + 'a>>;

async fn commit_group(
    pool: &Pool,
    keys: &ChainKeys,
    known: &Known,
    work: Vec<(String, Op, AuditDraft)>,
) -> Result<Vec<(Done, AuditEvent)>, StorageError> {
    let client = pool.get().await.map_err(pool_get_err)?;
    let st = Prepared::on(&client).await?;
    let txn = Txn::open(client, st);
    let (c, st) = (txn.client(), &txn.st);
    let names: Vec<&str> = work.iter().map(|(name, _, _)| name.as_str()).collect();
    // Rows of states not known to exist are made first, in an autocommit of their own (an empty
    // row is no change), so that one statement then locks every row and chain head in name order.
    let unknown: Vec<&str> = {
        let known = known.lock().unwrap_or_else(|p| p.into_inner());
        names.iter().copied().filter(|n| !known.contains(*n)).collect()
    };
    let key: [&(dyn ToSql + Sync); 1] = [&names];
    let create: [&(dyn ToSql + Sync); 1] = [&unknown];
    let rows = if unknown.is_empty() {
        tokio::try_join!(c.batch_execute("BEGIN"), c.query(&st.group_rows, &key))?.1
    } else {
        tokio::try_join!(c.execute(&st.create_rows, &create), c.batch_execute("BEGIN"), c.query(&st.group_rows, &key))?
            .2
    };
    if !unknown.is_empty() {
        let mut known = known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() + unknown.len() > KNOWN_ROWS {
            known.clear();
        }
        known.extend(unknown.iter().map(|n| n.to_string()));
    }
    let mut found: HashMap<String, (StateRow, i64, String)> = rows
        .iter()
        .map(|r| (r.get::<_, String>(GROUP_NAME_AT), (row_from(r), r.get(GROUP_NAME_AT + 1), r.get(GROUP_NAME_AT + 2))))
        .collect();
    let mut decided = Vec::with_capacity(work.len());
    for (name, op, audit) in work {
        let (row, seq, head) = found
            .remove(&name)
            .ok_or_else(|| StorageError::Corrupt(format!("the row of state {name:?} was not found in its group")))?;
        let (done, effect, mut event) = decide(&row, op, audit);
        // The head's number is taken: an event outside this chain would leave a gap that reads
        // as deleted rows (see `Txn::place`).
        if !audit_chain::in_chain(&event) || audit_chain::chain_of(&event) != name {
            return Err(StorageError::Corrupt(format!(
                "internal error: a {} event in the group of {name:?}",
                event.action.as_str()
            )));
        }
        event.mac = Some(keys.seal(&name, seq, &head, &event));
        event.seq = Some(seq);
        decided.push((name, done, effect, event));
    }
    let mut writes: Vec<Write<'_>> = Vec::new();
    for (name, _, effect, event) in &decided {
        let name = name.as_str();
        match effect {
            Effect::None => {}
            Effect::SetLock { lock, released } => {
                let released = released.as_ref().map(|(id, user)| (id.as_str(), user.as_str()));
                writes.push(Box::pin(async move {
                    set_lock(c, &st.set_lock, name, lock.as_ref(), released).await.map(|()| None)
                }));
            }
            Effect::Store { meta, body, prune_below } => {
                writes.push(Box::pin(async move {
                    let v = meta.version as i64;
                    let params: [&(dyn ToSql + Sync); 10] = [
                        &name,
                        &v,
                        &meta.serial.map(|s| s as i64),
                        &meta.lineage,
                        &meta.sha256,
                        &(meta.size as i64),
                        &meta.created_by,
                        &meta.created_at,
                        &meta.restored_from.map(|r| r as i64),
                        body,
                    ];
                    c.execute(&st.insert_version, &params).await?;
                    Ok(None)
                }));
                writes.push(Box::pin(async move {
                    let v = meta.version as i64;
                    c.execute(&st.advance, &[&name, &v]).await?;
                    Ok(None)
                }));
                writes.push(Box::pin(async move {
                    c.execute(&st.prune, &[&name, prune_below]).await?;
                    Ok(None)
                }));
            }
        }
        writes.push(Box::pin(async move { insert_audit_with(c, &st.audit, event).await.map(Some) }));
    }
    // try_join_all polls the writes in order at once: each is sent before the COMMIT.
    let ids: Vec<i64> =
        txn.commit_with(futures_util::future::try_join_all(writes)).await?.into_iter().flatten().collect();
    Ok(decided
        .into_iter()
        .zip(ids)
        .map(|((_, done, _, mut event), id)| {
            event.id = id;
            (done, event)
        })
        .collect())
}

// Columns of `group_rows_sql`: the state's row (as `state_row_sql`), then its name, the chain head's
// number and MAC.
pub(super) const GROUP_NAME_AT: usize = 15;

/// Every named state's row under a row lock, in name order, each followed by its audit chain's
/// head moved on by one (after the row: the lock order of `take_place`).
pub(super) fn group_rows_sql() -> String {
    format!(
        "WITH s AS ({} ORDER BY s.name FOR UPDATE OF s),
              h AS (INSERT INTO kvm_audit_chains (chain, seq, mac) SELECT state_name, 1, '' FROM s ORDER BY state_name
                    ON CONFLICT (chain) DO UPDATE SET seq = kvm_audit_chains.seq + 1 RETURNING chain, seq, mac)
         SELECT s.*, h.seq, h.mac FROM s JOIN h ON h.chain = s.state_name",
        super::state_columns_sql("s.name = ANY($1)", ", s.name AS state_name")
    )
}
