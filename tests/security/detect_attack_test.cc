// Runs attack techniques for real inside a test cgroup laid out like a pod
// (<root>/pod<uid>/<container-id>) and asserts the sensor, decoder and
// default rules raise the expected alert attributed to that container and
// process. Techniques use syscalls directly plus host binaries (/bin/sh,
// /bin/true); mount-namespace techniques work on tmpfs mounts private to
// the child so the host is never touched.
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "control/detect/container_resolver.h"
#include "control/detect/engine.h"
#include "control/detect/kernel_event_decoder.h"
#include "control/detect/kernel_filter.h"
#include "control/detect/rule_set.h"
#include "dataplane/detect_sensor.h"
#include "dataplane/kernel_filesystems.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace kelpie::detect {
namespace {

constexpr char kPodUid[] = "7f3c2a10-detect-test";
constexpr char kContainerId[] = "c0ffee0123456789";

struct Alert {
  std::string rule;
  int64_t pid;
  std::string container_id;
  std::string pod_uid;
  std::string exepath;
  std::vector<std::string> ancestors;
  bool killed;
};

// A cgroup tree for one test, removed on scope exit (processes in it have
// exited by then: every child is waited for).
class TestCgroups {
 public:
  TestCgroups() {
    dataplane::CgroupV2Root v2 = dataplane::DetectCgroupV2Root();
    if (v2.layout == dataplane::CgroupLayout::kNone) return;
    root_ = v2.path + "/kelpie-detect-test-" + std::to_string(getpid());
    container_ = root_ + "/pod" + kPodUid + "/" + kContainerId;
    std::filesystem::create_directories(container_);
    struct stat st{};
    if (::stat(root_.c_str(), &st) == 0) root_id_ = st.st_ino;
  }
  ~TestCgroups() {
    if (root_.empty()) return;
    ::rmdir(container_.c_str());
    ::rmdir((root_ + "/pod" + kPodUid).c_str());
    ::rmdir(root_.c_str());
  }
  const std::string& root() const { return root_; }
  const std::string& container() const { return container_; }
  uint64_t root_id() const { return root_id_; }

 private:
  std::string root_, container_;
  uint64_t root_id_ = 0;
};

// Child side: join the container cgroup, run the technique, exit.
[[noreturn]] void RunChild(const std::string& cgroup, const std::function<void()>& technique) {
  std::ofstream procs(cgroup + "/cgroup.procs");
  procs << "0" << std::flush;
  if (!procs) _exit(100);
  technique();
  _exit(0);
}

class DetectAttackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KELPIE_REQUIRE_PRIVILEGES();
    ASSERT_FALSE(cgroups_.root().empty()) << "no cgroup v2 hierarchy";
    auto rules = RuleSet::LoadFiles({std::string(KELPIE_DETECT_RULES_DIR) + "/default.yaml"});
    ASSERT_TRUE(rules.ok()) << rules.status();
    auto engine = Engine::Compile(*rules);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
    resolver_ = std::make_unique<CgroupDirectoryResolver>(cgroups_.root());
    decoder_ = std::make_unique<KernelEventDecoder>(*resolver_, nullptr, DecoderOptions{4, "test-node"});
  }

  // Starts the sensor watching only the test cgroup root.
  void StartSensor(dataplane::DetectSensorOptions options = {}) {
    KernelFilter filter =
        DeriveKernelFilter(engine_->DerivePrefilter(), KELPIE_DETECT_MAX_PREFIXES, KELPIE_DETECT_PREFIX_LEN);
    options.kind_mask = filter.kind_mask;
    options.path_filter_mask = filter.path_filter_mask;
    for (const std::string& p : filter.prefixes) {
      if (options.prefixes.size() < KELPIE_DETECT_MAX_PREFIXES) options.prefixes.push_back({p, false});
    }
    options.watch_cgroup_id = cgroups_.root_id();
    options.watch_cgroup_level = 1;  // <v2 root>/kelpie-detect-test-<pid>
    options.include_host = false;
    auto sensor = dataplane::DetectSensor::Start(options, [this](const kelpie_detect_event& r) {
      ++records_;
      const Event* e = decoder_->Decode(r);
      if (e == nullptr) return;
      engine_->Evaluate(*e, [&](const CompiledRule& rule) {
        Alert a{rule.name(), e->proc.pid, std::string(e->container.id), std::string(e->container.k8s_pod_uid),
                std::string(e->proc.exepath), {}, r.killed != 0};
        for (size_t i = 0; i < e->proc.ancestor_count; ++i) a.ancestors.emplace_back(e->proc.ancestors[i]);
        alerts_.push_back(std::move(a));
      });
    });
    ASSERT_TRUE(sensor.ok()) << sensor.status();
    sensor_ = std::move(*sensor);
  }

  // Forks the technique into the container cgroup, polls the sensor until
  // the child has exited and its records are read; returns the exit status.
  int Run(const std::function<void()>& technique, bool poll_while_running = true) {
    pid_t child = fork();
    if (child == 0) RunChild(cgroups_.container(), technique);
    child_ = child;
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (poll_while_running) (void)sensor_->Poll(std::chrono::milliseconds(20));
      else usleep(20000);
      pid_t r = waitpid(child, &status, WNOHANG);
      if (r == child) break;
    }
    // Drain what is left (bounded).
    for (int i = 0; i < 20; ++i) {
      auto n = sensor_->Poll(std::chrono::milliseconds(20));
      if (n.ok() && *n == 0 && i > 3) break;
    }
    return status;
  }

  const Alert* Find(const std::string& rule) const {
    for (const Alert& a : alerts_) {
      if (a.rule == rule) return &a;
    }
    return nullptr;
  }

  void ExpectAlert(const std::string& rule) {
    const Alert* a = Find(rule);
    ASSERT_NE(a, nullptr) << "no alert \"" << rule << "\" among " << AlertNames() << " (" << records_ << " records)";
    EXPECT_EQ(a->container_id, kContainerId);
    EXPECT_EQ(a->pod_uid, kPodUid);
    // The technique ran in the forked child or a process it exec'd into.
    EXPECT_TRUE(a->pid == child_ || !a->ancestors.empty()) << rule << " pid " << a->pid;
  }

  std::string AlertNames() const {
    std::string out;
    for (const Alert& a : alerts_) out += "[" + a.rule + "] ";
    return out.empty() ? "none" : out;
  }

  TestCgroups cgroups_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<CgroupDirectoryResolver> resolver_;
  std::unique_ptr<KernelEventDecoder> decoder_;
  std::unique_ptr<dataplane::DetectSensor> sensor_;
  std::vector<Alert> alerts_;
  size_t records_ = 0;
  pid_t child_ = 0;
  testing::TempDir tmp_;
};

// A private mount namespace with tmpfs over `dir`, so writes stay in it.
void PrivateTmpfsOver(const char* dir) {
  if (unshare(CLONE_NEWNS) != 0) _exit(101);
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(102);
  if (mount("tmpfs", dir, "tmpfs", 0, nullptr) != 0) _exit(103);
}

void CopyFile(const std::string& from, const std::string& to, mode_t mode) {
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
  ::chmod(to.c_str(), mode);
}

TEST_F(DetectAttackTest, ReadShadow) {
  StartSensor();
  Run([] { close(open("/etc/shadow", O_RDONLY)); });
  ExpectAlert("Read sensitive file by untrusted process");
}

TEST_F(DetectAttackTest, TerminalShell) {
  StartSensor();
  Run([] {
    int master = -1, slave = -1;
    if (openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) _exit(101);
    setsid();
    ioctl(slave, TIOCSCTTY, 0);
    dup2(slave, 0);
    execl("/bin/sh", "sh", "-c", "exit 0", nullptr);
    _exit(102);
  });
  ExpectAlert("Terminal shell in container");
  EXPECT_EQ(Find("Terminal shell in container")->exepath, "/bin/sh");
}

TEST_F(DetectAttackTest, WriteBelowEtc) {
  StartSensor();
  int status = Run([] {
    PrivateTmpfsOver("/etc");
    close(open("/etc/kelpie-detect-test", O_WRONLY | O_CREAT, 0644));
  });
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ExpectAlert("Write below etc in container");
}

TEST_F(DetectAttackTest, LogTruncation) {
  StartSensor();
  int status = Run([] {
    PrivateTmpfsOver("/var/log");
    close(open("/var/log/syslog", O_WRONLY | O_CREAT | O_TRUNC, 0644));
  });
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ExpectAlert("Log files truncated");
}

TEST_F(DetectAttackTest, MemfdExecution) {
  StartSensor();
  Run([] {
    int fd = memfd_create("payload", 0);
    std::ifstream in("/bin/true", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) _exit(101);
    char* argv[] = {const_cast<char*>("payload"), nullptr};
    char* envp[] = {nullptr};
    fexecve(fd, argv, envp);
    _exit(102);
  });
  ExpectAlert("Fileless execution via memfd");
}

TEST_F(DetectAttackTest, PtraceAttach) {
  StartSensor();
  Run([] {
    pid_t target = fork();
    if (target == 0) {
      pause();
      _exit(0);
    }
    if (ptrace(PTRACE_ATTACH, target, nullptr, nullptr) == 0) waitpid(target, nullptr, 0);
    kill(target, SIGKILL);
    waitpid(target, nullptr, 0);
  });
  ExpectAlert("Ptrace attach to process");
}

TEST_F(DetectAttackTest, SetuidBitChmod) {
  StartSensor();
  std::string file = tmp_.File("suid");
  CopyFile("/bin/true", file, 0755);
  Run([file] { chmod(file.c_str(), 04755); });
  ExpectAlert("Setuid or setgid bit set on file");
}

TEST_F(DetectAttackTest, Unshare) {
  StartSensor();
  Run([] { unshare(CLONE_NEWUTS); });
  ExpectAlert("Namespace change in container");
}

TEST_F(DetectAttackTest, Mount) {
  StartSensor();
  Run([] { PrivateTmpfsOver("/mnt"); });
  ExpectAlert("Mount of host path in container");
}

TEST_F(DetectAttackTest, KernelModuleLoad) {
  StartSensor();
  Run([] {
    char garbage[64] = "not an ELF module";
    syscall(SYS_init_module, garbage, sizeof(garbage), "");
  });
  ExpectAlert("Kernel module load");
}

TEST_F(DetectAttackTest, BpfCall) {
  StartSensor();
  Run([] {
    union bpf_attr attr{};
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
    if (fd >= 0) close(static_cast<int>(fd));
  });
  ExpectAlert("BPF program load from container");
}

TEST_F(DetectAttackTest, MiningPortConnect) {
  StartSensor();
  Run([] {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(3333);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));  // nothing listens: refused
    close(s);
  });
  ExpectAlert("Outbound connection to crypto mining port");
}

TEST_F(DetectAttackTest, PackageManagerExec) {
  StartSensor();
  std::string apt = tmp_.File("apt-get");
  CopyFile("/bin/true", apt, 0755);
  Run([apt] {
    execl(apt.c_str(), "apt-get", "install", "nmap", nullptr);
    _exit(101);
  });
  ExpectAlert("Package management process in container");
}

TEST_F(DetectAttackTest, BenignWorkloadRaisesNothing) {
  StartSensor();
  Run([] {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
    listen(listener, 64);
    for (int i = 0; i < 50; ++i) {
      int c = socket(AF_INET, SOCK_STREAM, 0);
      connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      int s = accept(listener, nullptr, nullptr);
      (void)!write(c, "ping", 4);
      char buf[4];
      (void)!read(s, buf, sizeof(buf));
      close(s);
      close(c);
      close(open("/etc/hostname", O_RDONLY));
      close(open("/proc/self/status", O_RDONLY));
    }
    for (int i = 0; i < 5; ++i) {
      pid_t p = fork();
      if (p == 0) {
        execl("/bin/true", "true", nullptr);
        _exit(1);
      }
      waitpid(p, nullptr, 0);
    }
    close(listener);
  });
  EXPECT_GT(records_, 0u);
  EXPECT_TRUE(alerts_.empty()) << AlertNames();
}

TEST_F(DetectAttackTest, KillActionInKernel) {
  dataplane::DetectSensorOptions options;
  std::string dir = tmp_.path() + "/";
  ASSERT_LE(dir.size(), static_cast<size_t>(KELPIE_DETECT_PREFIX_LEN));
  options.prefixes.push_back({dir, true});
  StartSensor(options);
  std::string evil = tmp_.File("miner");
  CopyFile("/bin/sleep", evil, 0755);
  int status = Run([evil] {
    execl(evil.c_str(), "miner", "30", nullptr);
    _exit(101);
  });
  ASSERT_TRUE(WIFSIGNALED(status)) << "status " << status;
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

TEST_F(DetectAttackTest, ExecStormWithTinyRingBufferDropsAndNeverBlocks) {
  dataplane::DetectSensorOptions options;
  options.ring_buffer_bytes = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  StartSensor(options);
  // Nothing reads while the storm runs: the buffer fills and the kernel drops.
  int status = Run(
      [] {
        for (int i = 0; i < 200; ++i) {
          pid_t p = fork();
          if (p == 0) {
            execl("/bin/true", "true", nullptr);
            _exit(1);
          }
          waitpid(p, nullptr, 0);
        }
      },
      /*poll_while_running=*/false);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto counters = sensor_->Counters();
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_GT((*counters)[KELPIE_DETECT_DROP_RINGBUF], 0u);
}

}  // namespace
}  // namespace kelpie::detect
