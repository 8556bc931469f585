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
use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_postgres::types::ToSql;

use super::{pool_get_err, row_from, Prepared, Txn, BEGIN_WRITE};
use crate::audit::AuditEvent;
use crate::audit_chain::{self, ChainKeys};
use crate::storage::rules::{self, Done, Effect, Op, StateRow};
use crate::storage::*;

// Most operations in one group: bounds the statements sent with one COMMIT.
const MAX_GROUP: usize = 64;
// States known to have a row (rows are never deleted), so a group need not make them; past this
// many the set starts again (it only saves a statement).
const KNOWN_ROWS: usize = 100_000;

/// Names of states whose row exists.
type Known = std::sync::Mutex<HashSet<String>>;

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
        tokio::try_join!(c.batch_execute(BEGIN_WRITE), c.query(&st.group_rows, &key))?.1
    } else {
        tokio::try_join!(
            c.execute(&st.create_rows, &create),
            c.batch_execute(BEGIN_WRITE),
            c.query(&st.group_rows, &key)
        )?
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
    let mut writes = Writes::default();
    for (name, op, audit) in work {
        let (row, seq, head) = found
            .remove(&name)
            .ok_or_else(|| StorageError::Corrupt(format!("the row of state {name:?} was not found in its group")))?;
        let (done, effect, mut event) = rules::decide(&row, op, audit);
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
        writes.add(&name, effect, &event);
        decided.push((done, event));
    }
    let mut ids = txn.commit_with(writes.send(c, st)).await?;
    decided
        .into_iter()
        .map(|(done, mut event)| {
            event.id = ids.remove(audit_chain::chain_of(&event)).ok_or_else(|| {
                StorageError::Corrupt(format!("the audit row of state {:?} was not returned", event.state))
            })?;
            Ok((done, event))
        })
        .collect()
}

/// A group's writes, one array per column: every write goes out in one statement over `unnest` of
/// the arrays ([`GROUP_WRITES`]), however many states the group holds (a statement per operation
/// cost the database more than the rows themselves). Every state is in the group once, so no two
/// entries touch one row.
#[derive(Default)]
struct Writes {
    lock: Columns<7>,
    version: VersionColumns,
    advance: (Vec<String>, Vec<i64>),
    prune: (Vec<String>, Vec<i64>),
    audit: Columns<10>,
    audit_status: Vec<i32>,
    audit_version: Vec<Option<i64>>,
    audit_seq: Vec<Option<i64>>,
}

/// `N` text columns.
struct Columns<const N: usize>([Vec<Option<String>>; N]);

impl<const N: usize> Default for Columns<N> {
    fn default() -> Self {
        Columns(std::array::from_fn(|_| Vec::new()))
    }
}

impl<const N: usize> Columns<N> {
    fn push(&mut self, row: [Option<String>; N]) {
        for (column, value) in self.0.iter_mut().zip(row) {
            column.push(value);
        }
    }
}

#[derive(Default)]
struct VersionColumns {
    name: Vec<String>,
    version: Vec<i64>,
    serial: Vec<Option<i64>>,
    lineage: Vec<Option<String>>,
    sha256: Vec<String>,
    size: Vec<i64>,
    created_by: Vec<String>,
    created_at: Vec<String>,
    restored_from: Vec<Option<i64>>,
    body: Vec<Vec<u8>>,
}

impl Writes {
    fn add(&mut self, name: &str, effect: Effect, event: &AuditEvent) {
        match effect {
            Effect::None => {}
            Effect::SetLock { lock, released } => {
                let (released_id, released_user) = released.unzip();
                self.lock.push([
                    Some(name.to_string()),
                    lock.as_ref().map(|l| l.id.clone()),
                    lock.as_ref().map(|l| l.user.clone()),
                    lock.as_ref().map(|l| l.info.clone()),
                    lock.as_ref().map(|l| l.at.clone()),
                    released_id,
                    released_user,
                ]);
            }
            Effect::Store { meta, body, prune_below } => {
                let v = &mut self.version;
                let version = meta.version as i64;
                v.name.push(name.to_string());
                v.version.push(version);
                v.serial.push(meta.serial.map(|s| s as i64));
                v.lineage.push(meta.lineage);
                v.sha256.push(meta.sha256);
                v.size.push(meta.size as i64);
                v.created_by.push(meta.created_by);
                v.created_at.push(meta.created_at);
                v.restored_from.push(meta.restored_from.map(|r| r as i64));
                v.body.push(body);
                self.advance.0.push(name.to_string());
                self.advance.1.push(version);
                if let Some(below) = prune_below {
                    self.prune.0.push(name.to_string());
                    self.prune.1.push(below);
                }
            }
        }
        self.audit.push([
            Some(event.at.clone()),
            Some(event.user.clone()),
            Some(event.addr.clone()),
            Some(event.action.as_str().to_string()),
            event.state.clone(),
            event.lock_id.clone(),
            event.lock_info.as_ref().map(|v| v.to_string()),
            Some(event.outcome.as_str().to_string()),
            Some(event.detail.clone()),
            event.mac.clone(),
        ]);
        self.audit_status.push(event.status as i32);
        self.audit_version.push(event.version.map(|v| v as i64));
        self.audit_seq.push(event.seq);
    }

    /// Sends the group's writes (one statement, at its first poll, so before the `COMMIT` that
    /// `Txn::commit_with` pipelines behind it) and gives the audit rows' IDs by state.
    async fn send(&self, c: &deadpool_postgres::Object, st: &Prepared) -> Result<HashMap<String, i64>, StorageError> {
        let l = &self.lock.0;
        let lock: [&(dyn ToSql + Sync); 7] = [&l[0], &l[1], &l[2], &l[3], &l[4], &l[5], &l[6]];
        let v = &self.version;
        let version: [&(dyn ToSql + Sync); 10] = [
            &v.name,
            &v.version,
            &v.serial,
            &v.lineage,
            &v.sha256,
            &v.size,
            &v.created_by,
            &v.created_at,
            &v.restored_from,
            &v.body,
        ];
        let advance: [&(dyn ToSql + Sync); 2] = [&self.advance.0, &self.advance.1];
        let prune: [&(dyn ToSql + Sync); 2] = [&self.prune.0, &self.prune.1];
        let a = &self.audit.0;
        let audit: [&(dyn ToSql + Sync); 13] = [
            &a[0],
            &a[1],
            &a[2],
            &a[3],
            &a[4],
            &a[5],
            &a[6],
            &a[7],
            &self.audit_status,
            &self.audit_version,
            &a[8],
            &self.audit_seq,
            &a[9],
        ];
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(34);
        params.extend_from_slice(&lock);
        params.extend_from_slice(&version);
        params.extend_from_slice(&advance);
        params.extend_from_slice(&prune);
        params.extend_from_slice(&audit);
        let rows = c.query(&st.group_writes, &params).await?;
        Ok(rows.iter().map(|r| (r.get::<_, String>(1), r.get::<_, i64>(0))).collect())
    }
}

/// A group's writes in one statement, each kind of write a part of it over `unnest` of one array
/// per column (see `Writes`): the states' locks ($1–$7), the new versions ($8–$17), the states'
/// current versions ($18–$19), the versions pruned ($20–$21), and the audit rows ($22–$34), each
/// moving its chain's head (the state's: a group's events are all chained, one per state) to its
/// MAC; the audit rows come back as (id, state). The parts touch disjoint rows (a group holds a
/// state once: its row is updated by the lock part or the current-version part, never both; a
/// pruned version is below the new one). Each part also filters its table by `= ANY` of the
/// names, so that the planner never joins the arrays to the whole table.
pub(super) const GROUP_WRITES: &str = "WITH
     locks AS (UPDATE kvm_states s SET lock_id = u.lock_id, lock_user = u.lock_user, lock_info = u.lock_info,
             lock_since = u.lock_since, released_lock_id = u.released_lock_id,
             released_lock_user = u.released_lock_user
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
             AS u(name, lock_id, lock_user, lock_info, lock_since, released_lock_id, released_lock_user)
         WHERE s.name = ANY($1) AND s.name = u.name),
     versions AS (INSERT INTO kvm_versions
             (name, version, serial, lineage, sha256, size, created_by, created_at, restored_from, body)
         SELECT * FROM unnest($8::text[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::bigint[],
             $14::text[], $15::text[], $16::bigint[], $17::bytea[])),
     advance AS (UPDATE kvm_states s SET current_version = u.v, next_version = u.v + 1
         FROM unnest($18::text[], $19::bigint[]) AS u(name, v) WHERE s.name = ANY($18) AND s.name = u.name),
     pruned AS (DELETE FROM kvm_versions v USING unnest($20::text[], $21::bigint[]) AS u(name, below)
         WHERE v.name = ANY($20) AND v.name = u.name AND v.version <= u.below),
     e AS (SELECT * FROM unnest($22::text[], $23::text[], $24::text[], $25::text[], $26::text[], $27::text[],
             $28::text[], $29::text[], $30::int[], $31::bigint[], $32::text[], $33::bigint[], $34::text[])
         AS e(at, usr, addr, action, state, lock_id, lock_info, outcome, status, version, detail, seq, mac)),
     head AS (UPDATE kvm_audit_chains c SET mac = e.mac FROM e WHERE c.chain = ANY($26) AND c.chain = e.state)
     INSERT INTO kvm_audit (at, \"user\", addr, action, state, lock_id, lock_info, outcome, status, version, detail,
         seq, mac)
     SELECT at, usr, addr, action, state, lock_id, lock_info, outcome, status, version, detail, seq, mac FROM e
     ORDER BY state
     RETURNING id, state";

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
