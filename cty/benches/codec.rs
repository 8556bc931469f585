//! Throughput of the wire codecs on a ~1 MiB state-like value: an object holding lists
//! of objects with strings, numbers, bools, nested lists, sets and maps.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

// The provider binary runs on mimalloc (decoding builds many small strings and maps, and
// the system allocator dominated the profile): measure the codec as the provider runs it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tf_cty::{json, msgpack, Number, Type, Value};

fn domain_type() -> Type {
    Type::object([
        ("name", Type::String),
        ("uuid", Type::String),
        ("memory", Type::Number),
        ("vcpu", Type::Number),
        ("cpu_ratio", Type::Number),
        ("running", Type::Bool),
        ("autostart", Type::Bool),
        ("description", Type::String),
        (
            "disk",
            Type::list(Type::object([
                ("path", Type::String),
                ("size", Type::Number),
                ("bus", Type::String),
                ("readonly", Type::Bool),
                ("pool", Type::String),
            ])),
        ),
        (
            "network_interface",
            Type::set(Type::object([
                ("mac", Type::String),
                ("network", Type::String),
                ("addresses", Type::list(Type::String)),
                ("wait_for_lease", Type::Bool),
            ])),
        ),
        ("metadata", Type::map(Type::String)),
    ])
}

fn root_type() -> Type {
    Type::object([
        ("id", Type::String),
        ("name", Type::String),
        ("domains", Type::list(domain_type())),
        ("tags", Type::map(Type::String)),
    ])
}

fn n(v: i64) -> Value {
    Value::Number(Number::from_i64(v))
}

fn domain(i: usize) -> Value {
    let disks = (0..3)
        .map(|d| {
            Value::object_from([
                ("path", Value::String(format!("/var/lib/libvirt/images/vm-{i:05}-disk{d}.qcow2"))),
                ("size", n(10_737_418_240 * (d as i64 + 1))),
                ("bus", Value::string(if d == 0 { "virtio" } else { "scsi" })),
                ("readonly", Value::Bool(d == 2)),
                ("pool", Value::string("default")),
            ])
        })
        .collect();
    let nics = (0..2)
        .map(|k| {
            Value::object_from([
                ("mac", Value::String(format!("52:54:00:{:02x}:{:02x}:{k:02x}", i / 256 % 256, i % 256))),
                ("network", Value::string(if k == 0 { "default" } else { "storage-net" })),
                (
                    "addresses",
                    Value::List(vec![
                        Value::String(format!("10.{k}.{}.{}", i / 250 % 250, i % 250 + 2)),
                        Value::string("fe80::5054:ff:fe12:3456"),
                    ]),
                ),
                ("wait_for_lease", Value::Bool(k == 0)),
            ])
        })
        .collect();
    let metadata: BTreeMap<String, Value> = [
        ("owner", Value::string("platform-team")),
        ("environment", Value::string(if i % 3 == 0 { "production" } else { "staging" })),
        ("cost-center", Value::String(format!("cc-{}", 1000 + i % 17))),
        ("managed-by", Value::string("terraform")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Value::object_from([
        ("name", Value::String(format!("vm-{i:05}.cluster.example.internal"))),
        ("uuid", Value::String(format!("6f1c2a7e-{i:04x}-4b8e-9c3d-{:012x}", i * 7919))),
        ("memory", n(2048 << (i % 4))),
        ("vcpu", n(1 + (i % 8) as i64)),
        ("cpu_ratio", Value::Number(Number::from_f64(0.25 * (i % 4 + 1) as f64 + 0.125))),
        ("running", Value::Bool(i % 5 != 0)),
        ("autostart", Value::Bool(i % 2 == 0)),
        (
            "description",
            Value::String(format!("Worker node {i} of the build cluster; rebuilt nightly from the golden image.")),
        ),
        ("disk", Value::List(disks)),
        ("network_interface", Value::Set(nics)),
        ("metadata", Value::Map(metadata)),
    ])
}

/// A value whose msgpack encoding is just over 1 MiB.
fn sample() -> (Value, Type) {
    let ty = root_type();
    let mut count = 512;
    loop {
        let v = Value::object_from([
            ("id", Value::string("cluster-7")),
            ("name", Value::string("build cluster")),
            ("domains", Value::List((0..count).map(domain).collect())),
            ("tags", Value::Map([("team".to_owned(), Value::string("platform"))].into())),
        ]);
        if msgpack::encode(&v, &ty).unwrap().len() >= 1 << 20 {
            return (v, ty);
        }
        count += 64;
    }
}

fn bench(c: &mut Criterion) {
    let (value, ty) = sample();
    let packed = msgpack::encode(&value, &ty).unwrap();
    assert_eq!(msgpack::decode(&packed, &ty).unwrap(), value);
    let text = json::encode(&value, &ty).unwrap();
    assert_eq!(json::decode(&text, &ty).unwrap(), value);

    let mut g = c.benchmark_group("msgpack");
    g.throughput(Throughput::Bytes(packed.len() as u64));
    g.bench_function("encode", |b| b.iter(|| msgpack::encode(black_box(&value), black_box(&ty)).unwrap()));
    g.bench_function("decode", |b| b.iter(|| msgpack::decode(black_box(&packed), black_box(&ty)).unwrap()));
    // The same without freeing each result inside the timed loop: decoding alone, as
    // opposed to decoding plus the caller's eventual drop.
    g.bench_function("decode_without_drop", |b| {
        b.iter_with_large_drop(|| msgpack::decode(black_box(&packed), black_box(&ty)).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("json");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("encode", |b| b.iter(|| json::encode(black_box(&value), black_box(&ty)).unwrap()));
    g.bench_function("decode", |b| b.iter(|| json::decode(black_box(&text), black_box(&ty)).unwrap()));
    g.finish();

    eprintln!("msgpack input: {} bytes; JSON input: {} bytes", packed.len(), text.len());
}

criterion_group!(benches, bench);
criterion_main!(benches);
