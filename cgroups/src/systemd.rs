//! The systemd driver: a container's cgroup as a transient scope unit,
//! created and stopped over D-Bus (runc's semantics: `slice:prefix:name`
//! is the unit `prefix-name.scope` in `slice`).
//!
//! systemd only creates the scope around a live process, so the runtime
//! starts the unit with the blocked init's pid, then [`check_placement`]
//! makes sure the init really is in the scope's cgroup before any limit
//! is written (crun once wrote limits into sshd's cgroup when that was
//! not checked). Limits themselves go through cgroupfs, like the
//! cgroupfs driver; those systemd has properties for (memory, CPU,
//! cpuset, pids, IO, see [`crate::systemd_resources`]) and the device
//! rules (`DevicePolicy`/`DeviceAllow`, see [`crate::systemd_devices`])
//! are also set as unit properties, so a `systemctl daemon-reload`, which
//! makes systemd re-apply the unit's settings, does not reset them.

use crate::dbus::{Connection, DbusError, Message, Value};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

const DESTINATION: &str = "org.freedesktop.systemd1";
const OBJECT: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

/// One D-Bus call (TCG-emulated machines are slow).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A start or stop job, from submission to JobRemoved.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the unit's state is polled while no JobRemoved comes.
const POLL_SLICE: Duration = Duration::from_millis(500);

const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
const UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";

/// The container's scope unit, kept in the state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemdScope {
    /// `prefix-name.scope`.
    pub unit: String,
    /// The slice it goes in.
    pub slice: String,
    /// The scope's cgroup from the hierarchy root, where systemd puts it.
    pub cgroup: String,
    /// The unit's Description.
    pub description: String,
    /// Set once systemd accepted the unit: only then is it ours to stop
    /// (a unit of the same name may belong to someone else).
    #[serde(default)]
    pub started: bool,
}

/// How systemd drives the unit's controllers, which decides the names of
/// its properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitLayout {
    /// cgroup2 only: IOAccounting, CPUWeight, ...
    Unified,
    /// v1 controllers: BlockIOAccounting, CPUShares, ...
    Legacy,
}

fn dbus_error<'a>(unit: &'a str, op: &'static str) -> impl FnOnce(DbusError) -> Error + 'a {
    move |source| Error::Systemd {
        unit: unit.to_owned(),
        op,
        source,
    }
}

fn manager_call(member: &str, args: &[Value]) -> Message {
    Message::method_call(Some(DESTINATION), OBJECT, MANAGER, member, args)
}

/// The transient unit's properties: the scope's place, delegation, the
/// init's pid and accounting. The limits come from
/// [`crate::systemd_resources`] and [`crate::systemd_devices`].
pub fn scope_properties(scope: &SystemdScope, pid: u32, layout: UnitLayout) -> Vec<Value> {
    let bool_prop = |name, v| Value::property(name, Value::Bool(v));
    let io = match layout {
        UnitLayout::Unified => "IOAccounting",
        UnitLayout::Legacy => "BlockIOAccounting",
    };
    vec![
        Value::property("Description", Value::Str(scope.description.clone())),
        Value::property("Slice", Value::Str(scope.slice.clone())),
        // The runtime manages everything below the scope.
        bool_prop("Delegate", true),
        Value::property(
            "PIDs",
            Value::Array {
                elem: "u".into(),
                items: vec![Value::Uint32(pid)],
            },
        ),
        // No ordering against shutdown.target & co: a container is no service.
        bool_prop("DefaultDependencies", false),
        // A failed scope is collected too, so it cannot block its name.
        Value::property("CollectMode", Value::Str("inactive-or-failed".into())),
        bool_prop("MemoryAccounting", true),
        bool_prop("CPUAccounting", true),
        bool_prop("TasksAccounting", true),
        bool_prop(io, true),
    ]
}

/// Starts the scope around `pid` and waits for the job to finish.
pub fn start_scope(scope: &SystemdScope, properties: Vec<Value>) -> Result<()> {
    let unit = scope.unit.as_str();
    let mut conn = connect(unit)?;
    let args = [
        Value::Str(unit.to_owned()),
        // "fail": refuse rather than replace a job already queued for it.
        Value::Str("fail".into()),
        Value::Array {
            elem: "(sv)".into(),
            items: properties,
        },
        Value::Array {
            elem: "(sa(sv))".into(),
            items: Vec::new(),
        },
    ];
    let reply = conn
        .call(manager_call("StartTransientUnit", &args), CALL_TIMEOUT)
        .map_err(|e| match e.remote_name() {
            Some(UNIT_EXISTS) => Error::UnitExists(unit.to_owned()),
            _ => dbus_error(unit, "StartTransientUnit")(e),
        })?;
    let job = job_path(&reply).map_err(dbus_error(unit, "StartTransientUnit"))?;
    match wait_job(&mut conn, &job, unit)? {
        JobEnd::Result(result) if result == "done" => Ok(()),
        JobEnd::Result(result) => Err(Error::SystemdJob {
            unit: unit.to_owned(),
            op: "start",
            result,
        }),
        JobEnd::Polled(state) if state == "active" => Ok(()),
        JobEnd::Polled(state) => Err(Error::SystemdJob {
            unit: unit.to_owned(),
            op: "start",
            result: format!("unit is {state}"),
        }),
    }
}

/// Stops the unit and waits; a unit systemd no longer knows is already
/// gone (an emptied scope is collected by systemd itself).
pub fn stop_unit(unit: &str) -> Result<()> {
    let mut conn = connect(unit)?;
    let args = [Value::Str(unit.to_owned()), Value::Str("replace".into())];
    let reply = match conn.call(manager_call("StopUnit", &args), CALL_TIMEOUT) {
        Ok(reply) => reply,
        Err(e) if e.remote_name() == Some(NO_SUCH_UNIT) => return Ok(()),
        Err(e) => return Err(dbus_error(unit, "StopUnit")(e)),
    };
    let job = job_path(&reply).map_err(dbus_error(unit, "StopUnit"))?;
    match wait_job(&mut conn, &job, unit)? {
        // "canceled": a later job for the unit replaced ours.
        JobEnd::Result(result) if result == "done" || result == "canceled" => Ok(()),
        JobEnd::Polled(state) if state != "active" && state != "deactivating" => Ok(()),
        JobEnd::Result(result) | JobEnd::Polled(result) => Err(Error::SystemdJob {
            unit: unit.to_owned(),
            op: "stop",
            result,
        }),
    }
}

/// Sets unit properties at runtime (`update`), so systemd keeps them, and
/// returns once systemd has written them to the unit's cgroup.
pub fn set_properties(unit: &str, properties: Vec<Value>) -> Result<()> {
    if properties.is_empty() {
        return Ok(());
    }
    let mut conn = connect(unit)?;
    let args = [
        Value::Str(unit.to_owned()),
        Value::Bool(true),
        Value::Array {
            elem: "(sv)".into(),
            items: properties,
        },
    ];
    conn.call(manager_call("SetUnitProperties", &args), CALL_TIMEOUT)
        .map_err(dbus_error(unit, "SetUnitProperties"))?;
    // systemd writes the cgroup files from a queue it works off before it
    // reads its next message: one more call waits for those writes, so
    // the caller's own writes come after them.
    get_property(&mut conn, OBJECT, MANAGER, "Version")
        .map(drop)
        .map_err(dbus_error(unit, "waiting for SetUnitProperties"))
}

/// A connection that receives JobRemoved.
fn connect(unit: &str) -> Result<Connection> {
    let mut conn = Connection::system(CALL_TIMEOUT).map_err(dbus_error(unit, "connect"))?;
    // The job's creator gets JobRemoved without Subscribe (systemd tracks
    // it), but the bus daemon only routes signals someone matched.
    conn.add_match(
        "type='signal',sender='org.freedesktop.systemd1',\
         interface='org.freedesktop.systemd1.Manager',member='JobRemoved'",
        CALL_TIMEOUT,
    )
    .map_err(dbus_error(unit, "AddMatch"))?;
    Ok(conn)
}

fn job_path(reply: &Message) -> std::result::Result<String, DbusError> {
    reply
        .args()?
        .first()
        .and_then(|v| v.as_str().map(str::to_owned))
        .ok_or_else(|| DbusError::Malformed(format!("reply {:?} is no job path", reply.signature)))
}

/// How a job ended: its JobRemoved result, or the unit's ActiveState when
/// the job vanished without a signal we saw.
enum JobEnd {
    Result(String),
    Polled(String),
}

/// Waits for JobRemoved of `job`; between signals, polls whether the job
/// still exists, in case the signal never reaches us.
fn wait_job(conn: &mut Connection, job: &str, unit: &str) -> Result<JobEnd> {
    let deadline = Instant::now() + JOB_TIMEOUT;
    loop {
        let slice_end = (Instant::now() + POLL_SLICE).min(deadline);
        match conn.wait_signal(slice_end, |m| is_job_removed(m, job)) {
            Ok(signal) => return job_result(&signal).map_err(dbus_error(unit, "JobRemoved")),
            Err(DbusError::Timeout(_)) => {}
            Err(e) => return Err(dbus_error(unit, "waiting for the job")(e)),
        }
        if !job_exists(conn, job).map_err(dbus_error(unit, "polling the job"))? {
            let state = active_state(conn, unit).map_err(dbus_error(unit, "ActiveState"))?;
            return Ok(JobEnd::Polled(state));
        }
        if Instant::now() >= deadline {
            return Err(Error::SystemdJob {
                unit: unit.to_owned(),
                op: "wait for",
                result: format!("job {job} still running after {JOB_TIMEOUT:?}"),
            });
        }
    }
}

fn is_job_removed(msg: &Message, job: &str) -> bool {
    msg.is_signal(MANAGER, "JobRemoved")
        && msg
            .args()
            .ok()
            .and_then(|a| a.get(1).and_then(|v| v.as_str().map(|p| p == job)))
            .unwrap_or(false)
}

/// The `result` of JobRemoved(u id, o job, s unit, s result).
fn job_result(msg: &Message) -> std::result::Result<JobEnd, DbusError> {
    let args = msg.args()?;
    match args.get(3).and_then(Value::as_str) {
        Some(result) => Ok(JobEnd::Result(result.to_owned())),
        None => Err(DbusError::Malformed("JobRemoved without a result".into())),
    }
}

fn get_property(
    conn: &mut Connection,
    path: &str,
    interface: &str,
    name: &str,
) -> std::result::Result<Value, DbusError> {
    let msg = Message::method_call(
        Some(DESTINATION),
        path,
        PROPERTIES,
        "Get",
        &[Value::Str(interface.into()), Value::Str(name.into())],
    );
    let reply = conn.call(msg, CALL_TIMEOUT)?;
    reply
        .args()?
        .into_iter()
        .next()
        .map(|v| v.unwrap_variant().clone())
        .ok_or_else(|| DbusError::Malformed(format!("Get {name}: empty reply")))
}

/// A finished job's object is gone: any error reading it means that.
fn job_exists(conn: &mut Connection, job: &str) -> std::result::Result<bool, DbusError> {
    match get_property(conn, job, "org.freedesktop.systemd1.Job", "State") {
        Ok(_) => Ok(true),
        Err(DbusError::Remote { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The unit's ActiveState; "inactive" when systemd no longer has it.
fn active_state(conn: &mut Connection, unit: &str) -> std::result::Result<String, DbusError> {
    let reply = match conn.call(
        manager_call("GetUnit", &[Value::Str(unit.to_owned())]),
        CALL_TIMEOUT,
    ) {
        Ok(reply) => reply,
        Err(e) if e.remote_name() == Some(NO_SUCH_UNIT) => return Ok("inactive".into()),
        Err(e) => return Err(e),
    };
    let path = job_path(&reply)?;
    let state = get_property(conn, &path, UNIT, "ActiveState")?;
    Ok(state.as_str().unwrap_or("unknown").to_owned())
}

/// Checks, from the text of /proc/PID/cgroup, that the process is in
/// `expected` on the hierarchies systemd tracks processes with: the
/// `name=systemd` v1 hierarchy when there is one, and cgroup2 (`0::`) on a
/// unified host. Returns what was found instead.
pub fn check_placement(
    proc_cgroup: &str,
    expected: &str,
    unified: bool,
) -> std::result::Result<(), String> {
    let mut checked = false;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let tracked =
            controllers == "name=systemd" || (unified && id == "0" && controllers.is_empty());
        if tracked {
            if path != expected {
                return Err(line.to_owned());
            }
            checked = true;
        }
    }
    if checked {
        Ok(())
    } else {
        Err("no systemd-tracked hierarchy listed".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> SystemdScope {
        SystemdScope {
            unit: "berth-c1.scope".into(),
            slice: "system.slice".into(),
            cgroup: "/system.slice/berth-c1.scope".into(),
            description: "berth container c1".into(),
            started: false,
        }
    }

    #[test]
    fn properties_place_and_delegate_the_scope() {
        let props = scope_properties(&scope(), 42, UnitLayout::Unified);
        let names: Vec<&str> = props
            .iter()
            .filter_map(|p| match p {
                Value::Struct(f) => f[0].as_str(),
                _ => None,
            })
            .collect();
        assert_eq!(
            names,
            [
                "Description",
                "Slice",
                "Delegate",
                "PIDs",
                "DefaultDependencies",
                "CollectMode",
                "MemoryAccounting",
                "CPUAccounting",
                "TasksAccounting",
                "IOAccounting",
            ]
        );
        assert!(props.contains(&Value::property("Slice", Value::Str("system.slice".into()))));
        let legacy = scope_properties(&scope(), 42, UnitLayout::Legacy);
        assert!(legacy.contains(&Value::property("BlockIOAccounting", Value::Bool(true))));
        assert_eq!(legacy.len(), 10);
    }

    #[test]
    fn placement_is_checked_on_the_tracked_hierarchies() {
        let want = "/system.slice/berth-c1.scope";
        assert_eq!(
            check_placement("0::/system.slice/berth-c1.scope\n", want, true),
            Ok(())
        );
        assert_eq!(
            check_placement("0::/system.slice/ssh.service\n", want, true),
            Err("0::/system.slice/ssh.service".into())
        );
        // Hybrid: name=systemd decides, cgroup2's line is not checked.
        let hybrid = "4:memory:/system.slice/berth-c1.scope\n1:name=systemd:/system.slice/berth-c1.scope\n0::/\n";
        assert_eq!(check_placement(hybrid, want, false), Ok(()));
        let elsewhere = "1:name=systemd:/user.slice\n0::/system.slice/berth-c1.scope\n";
        assert!(check_placement(elsewhere, want, false).is_err());
        assert!(check_placement("4:memory:/x\n", want, false).is_err());
    }

    #[test]
    fn scopes_from_old_state_files_are_not_started() {
        let json =
            r#"{"unit":"u.scope","slice":"s.slice","cgroup":"/s.slice/u.scope","description":"d"}"#;
        let scope: SystemdScope = serde_json::from_str(json).unwrap();
        assert!(!scope.started);
    }
}
