# berth and bale. Run as root on Debian 12.
CARGO ?= cargo
RUNTIME ?= $(CURDIR)/target/release/berth
DEMO := $(CURDIR)/target/demo

.PHONY: conformance-compare all build release demo deps test test-unit test-integration test-bale test-cgroups test-seccomp test-cgroups-vm \
        conformance test-clients bench install clean-demo

all: build

build:
	$(CARGO) build --workspace

# berth's release binary is static-pie (glibc linked in): no ld.so and no shared libc to
# map and relocate on every container start, twice (the CVE-2019-5736 guard re-executes
# it), and only the parts of libc it uses resident. The static build needs an explicit
# --target (proc-macros cannot be static); it lands, stripped, at target/release/berth.
HOST_TRIPLE = $(shell rustc -vV | sed -n 's/^host: //p')
release:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release -p berth --target $(HOST_TRIPLE)
	$(CARGO) build --release -p bale
	mkdir -p target/release
	cp --remove-destination target/$(HOST_TRIPLE)/release/berth target/release/berth
	strip --strip-all target/release/berth

# Packages the tests and the demo need (Debian 12).
deps:
	@missing=""; for p in busybox-static runc umoci skopeo docker-registry podman openssl apache2-utils curl iproute2; do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update && apt-get install -y $$missing; fi

# Build berth, make a busybox-static bundle and run a container in it.
demo: release
	@dpkg -s busybox-static >/dev/null 2>&1 || (apt-get update && apt-get install -y busybox-static)
	@rm -rf $(DEMO) && mkdir -p $(DEMO)/rootfs/bin $(DEMO)/rootfs/proc $(DEMO)/rootfs/sys $(DEMO)/rootfs/dev $(DEMO)/rootfs/tmp $(DEMO)/rootfs/etc
	@cp /bin/busybox $(DEMO)/rootfs/bin/busybox
	@for a in $$(/bin/busybox --list); do [ "$$a" = busybox ] || ln -sf busybox $(DEMO)/rootfs/bin/$$a; done
	@echo 'root:x:0:0:root:/root:/bin/sh' > $(DEMO)/rootfs/etc/passwd
	@echo 'root:x:0:' > $(DEMO)/rootfs/etc/group
	@cd $(DEMO) && $(RUNTIME) spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"$$/"sh", "-c", "echo Hello from a berth container: $$(hostname), pid $$$$, uid $$(id -u); uname -r"/' config.json
	cd $(DEMO) && $(RUNTIME) --root $(DEMO)/state run demo-$$$$

# Every test: unit tests of every package, then real containers as root.
test: deps build test-unit test-integration test-bale test-cgroups test-seccomp test-cgroups-vm test-clients conformance-compare

test-unit:
	$(CARGO) test --workspace --lib --bins
	$(CARGO) test -p berth --test config_fuzz
	python3 -m unittest discover -s bench -p 'test_*.py'

test-integration:
	$(CARGO) test -p berth --test integration -- --test-threads=2

test-bale:
	$(CARGO) test -p bale
	integration/bale/roundtrip.sh target/debug/bale
	integration/bale/registry.sh target/debug/bale

test-cgroups:
	$(CARGO) test -p berth-cgroups

test-seccomp:
	$(CARGO) test -p berth-seccomp

# The cgroup manager's tests, then berth containers, on a pure cgroup v2 kernel (qemu), and
# all of berth's cgroup tests on that kernel's hybrid layout (v1 controllers, no systemd);
# then the LSM tests on that kernel, which runs AppArmor, and booted with SELinux enforcing.
test-cgroups-vm:
	integration/cgroups-vm/run.sh
	integration/cgroups-vm/run.sh --integration
	integration/cgroups-vm/run.sh --hybrid
	integration/cgroups-vm/run.sh --lsm
	integration/cgroups-vm/run.sh --selinux
	integration/cgroups-vm/run.sh --systemd
	integration/cgroups-vm/run.sh --systemd-hybrid

# The OCI runtime-spec suite against RUNTIME (default: the freshly built berth).
conformance:
	conformance/run.sh $(if $(filter command line environment,$(origin RUNTIME)),--runtime $(RUNTIME))

# The suite against runc and berth: fails if berth fails a test runc passes.
conformance-compare:
	conformance/compare.sh

# containerd (ctr), podman and docker from Debian, each driving berth end to end.
test-clients: build
	integration/clients/run.sh $(CURDIR)/target/debug/berth

# Speed and memory against runc and crun (and bale against umoci/skopeo), one run.
bench:
	bench/run.sh

install: release
	install -m 0755 target/release/berth /usr/local/sbin/berth
	install -m 0755 target/release/bale /usr/local/bin/bale
