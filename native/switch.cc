#include "switch.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "poll_window.h"
#include "tap.h"
#include "worker.h"

namespace overlay {

Switch::Switch(const SwitchConfig& config)
    : config_(config),
      ports_(new PortTable()),
      counters_(new WorkerCounters[config.workers]),
      buckets_(new TokenBucket[kMaxPorts]),
      baseline_(new PortCounters[kMaxPorts]) {}

std::unique_ptr<Switch> Switch::Create(const SwitchConfig& config, std::string* err) {
  if (config.workers < 1 || config.workers > kMaxWorkers) {
    *err = "workers must be 1.." + std::to_string(kMaxWorkers);
    return nullptr;
  }
  std::unique_ptr<Switch> sw(new Switch(config));
  UnderlaySpec spec{config.underlay_ip, config.port, config.netns, config.workers};
  *err = OpenUnderlay(spec, &sw->sockets_);
  if (!err->empty()) return nullptr;
  bool uso = config.offloads && TapSupportsUso();
  sw->features_ = Features{true,
                           config.offloads,
                           uso,
                           sw->sockets_.gso,
                           sw->sockets_.gro,
                           true,
                           config.workers,
                           config.poll_us,
                           KernelHasEpollBusyPoll()};
  Tables initial;
  initial.ports = BuildPortTable(*sw->ports_);
  initial.remotes = sw->remotes_.current();
  initial.policy = std::make_shared<PolicyTable>();
  sw->tables_.store(new Tables(initial));
  for (int w = 0; w < config.workers; ++w) {
    sw->workers_.emplace_back(
        new Worker(*sw, w, sw->sockets_.rx[w], sw->sockets_.tx, sw->sockets_.gso));
  }
  for (auto& w : sw->workers_) {
    *err = w->Start();
    if (!err->empty()) return nullptr;  // the destructor stops what started
  }
  return sw;
}

Switch::~Switch() {
  Close();
}

void Switch::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  closed_ = true;
  for (auto& w : workers_) w->Stop();
  workers_.clear();
  qsbr_.Synchronize();  // every reader is offline now, so this frees all retired versions
  for (uint32_t i = 0; i < kMaxPorts; ++i) {
    Port& p = ports_->ports[i];
    if (!p.active) continue;
    for (int w = 0; w < config_.workers; ++w) close(p.fds[w]);
    p.active = false;
  }
  delete tables_.exchange(nullptr);
  CloseUnderlay(&sockets_);
}

void Switch::Publish(Tables next, RetiredShards retired) {
  const Tables* old = tables_.exchange(new Tables(std::move(next)));
  // A reader that loaded `old` may still follow it into the shards `next` replaced: both wait
  // for the same grace period. Shards `next` shares with `old` stay with remotes_.
  RetiredShards* shards = retired.empty() ? nullptr : new RetiredShards(std::move(retired));
  qsbr_.Retire([old, shards] {
    delete old;
    delete shards;
  });
}

void Switch::PublishPorts() {
  Tables next = *tables_.load();
  next.ports = BuildPortTable(*ports_);
  Publish(std::move(next));
}

void Switch::PublishRemotes(std::shared_ptr<const RemoteTable> remotes, RetiredShards retired) {
  Tables next = *tables_.load();
  next.remotes = std::move(remotes);
  Publish(std::move(next), std::move(retired));
}

void Switch::PublishPolicy() {
  auto policy = std::make_shared<PolicyTable>();
  policy->global_vnis = VniSet(global_vnis_);
  policy->peers = FlatMap<uint32_t, PeerInfo>(peers_);
  Tables next = *tables_.load();
  next.policy = policy;
  Publish(std::move(next));
}

std::string Switch::AddPort(const PortConfig& cfg, uint32_t* id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return "switch is closed";
  uint32_t slot = kMaxPorts;
  for (uint32_t i = 0; i < kMaxPorts; ++i) {
    const Port& p = ports_->ports[i];
    if (p.active) {
      if (p.mac == cfg.mac) return "a port with this MAC exists: " + std::string(p.name);
      if (p.ip == cfg.ip) return "a port with this IPv4 address exists: " + std::string(p.name);
    } else if (slot == kMaxPorts) {
      slot = i;
    }
  }
  if (slot == kMaxPorts) return "too many ports (" + std::to_string(kMaxPorts) + ")";
  TapSpec spec{cfg.name,       cfg.netns,       cfg.mac,          cfg.mtu,
               cfg.persistent, config_.workers, config_.offloads, features_.uso};
  TapDevice dev;
  std::string err = OpenTap(spec, &dev);
  if (!err.empty()) return err;

  Port p;
  p.active = true;
  p.generation = ++generation_;
  p.vni = cfg.vni;
  p.mac = cfg.mac;
  p.ip = cfg.ip;
  p.kind = cfg.kind;
  p.mtu = static_cast<uint16_t>(cfg.mtu);
  p.limited = cfg.rate_bits_per_sec > 0;
  for (int w = 0; w < config_.workers; ++w) p.fds[w] = dev.fds[w];
  std::strncpy(p.name, cfg.name.c_str(), sizeof(p.name) - 1);
  buckets_[slot].Configure(cfg.rate_bits_per_sec);

  // Counters of the slot's earlier occupants become the new port's zero.
  PortCounters& base = baseline_[slot];
  base.in_packets = base.in_bytes = base.out_packets = base.out_bytes = 0;
  for (int w = 0; w < config_.workers; ++w) {
    PortCounters& c = counters_[w].ports[slot];
    Bump(base.in_packets, c.in_packets.load());
    Bump(base.in_bytes, c.in_bytes.load());
    Bump(base.out_packets, c.out_packets.load());
    Bump(base.out_bytes, c.out_bytes.load());
  }
  ports_->ports[slot] = p;
  PublishPorts();
  for (int w = 0; w < config_.workers; ++w)
    workers_[w]->Watch(p.fds[w], Worker::Tag(slot, p.generation));
  *id = slot;
  return "";
}

std::string Switch::RemovePort(uint32_t id, bool destroy, std::vector<int>* to_close) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return "switch is closed";
  if (id >= kMaxPorts || !ports_->ports[id].active) return "no port " + std::to_string(id);
  Port& p = ports_->ports[id];
  std::vector<int> fds(p.fds, p.fds + config_.workers);
  for (int w = 0; w < config_.workers; ++w) workers_[w]->Forget(fds[w]);
  if (destroy) SetTapPersistent(fds[0], false);
  p.active = false;
  PublishPorts();
  // Packet threads may still hold the old version, and with it these fds, until a grace period.
  // Wait for it here (threads pass a quiescent point per batch, or sleep offline): after it no
  // thread reads these fds, and the caller may close them.
  qsbr_.Retire([] {});
  qsbr_.Synchronize();
  *to_close = std::move(fds);
  return "";
}

std::string Switch::SetPortVni(uint32_t id, uint32_t vni) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return "switch is closed";
  if (id >= kMaxPorts || !ports_->ports[id].active) return "no port " + std::to_string(id);
  ports_->ports[id].vni = vni;
  PublishPorts();
  return "";
}

std::string Switch::SetPortRate(uint32_t id, uint64_t rate) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return "switch is closed";
  if (id >= kMaxPorts || !ports_->ports[id].active) return "no port " + std::to_string(id);
  buckets_[id].Configure(rate);
  ports_->ports[id].limited = rate > 0;
  PublishPorts();
  return "";
}

void Switch::SetGlobalVnis(const std::vector<uint32_t>& vnis) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  global_vnis_ = vnis;
  PublishPolicy();
}

void Switch::SetPeers(const std::vector<std::pair<uint32_t, PeerInfo>>& peers) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  peers_ = peers;
  PublishPolicy();
}

void Switch::UpdateRemotes(const std::vector<Endpoint>& add, const std::vector<Mac>& remove) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  RetiredShards retired;
  std::shared_ptr<const RemoteTable> next = remotes_.Update(add, remove, &retired);
  PublishRemotes(std::move(next), std::move(retired));
}

void Switch::ReplaceRemotes(const std::vector<Endpoint>& all) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  RetiredShards retired;
  std::shared_ptr<const RemoteTable> next = remotes_.Replace(all, &retired);
  PublishRemotes(std::move(next), std::move(retired));
}

bool Switch::FindRemote(Mac mac, Endpoint* out) {
  std::lock_guard<std::mutex> lock(mu_);
  const Tables* t = tables_.load();
  const Endpoint* e = t ? t->remotes->FindMac(mac) : nullptr;
  if (e) *out = *e;
  return e != nullptr;
}

bool Switch::FindRemoteByIp(uint32_t ip, Endpoint* out) {
  std::lock_guard<std::mutex> lock(mu_);
  const Tables* t = tables_.load();
  const Endpoint* e = t ? t->remotes->FindIp(ip) : nullptr;
  if (e) *out = *e;
  return e != nullptr;
}

void Switch::RemoteEntries(std::vector<Endpoint>* by_mac, std::vector<Endpoint>* by_ip) {
  std::lock_guard<std::mutex> lock(mu_);
  const Tables* t = tables_.load();
  if (!t) return;
  for (const auto& shard : t->remotes->by_mac)
    shard.ForEach([&](Mac, const Endpoint& e) { by_mac->push_back(e); });
  for (const auto& shard : t->remotes->by_ip)
    shard.ForEach([&](uint32_t, const Endpoint& e) { by_ip->push_back(e); });
}

bool Switch::Reaches(uint32_t from, uint32_t to) {
  // Holding mu_ keeps the control side from publishing, so the version read here cannot be
  // retired (and freed) under us; packet threads never take mu_ and are not slowed.
  std::lock_guard<std::mutex> lock(mu_);
  const Tables* t = tables_.load();
  return t != nullptr && t->policy->Allowed(from, to);
}

CounterSnapshot Switch::Counters() {
  std::lock_guard<std::mutex> lock(mu_);
  CounterSnapshot s{};
  for (uint32_t i = 0; i < kMaxPorts; ++i) {
    const Port& p = ports_->ports[i];
    if (!p.active) continue;
    PortCounterSnapshot pc{i, p.vni, p.name, 0, 0, 0, 0};
    for (int w = 0; w < config_.workers; ++w) {
      const PortCounters& c = counters_[w].ports[i];
      pc.in_packets += c.in_packets.load();
      pc.in_bytes += c.in_bytes.load();
      pc.out_packets += c.out_packets.load();
      pc.out_bytes += c.out_bytes.load();
    }
    pc.in_packets -= baseline_[i].in_packets.load();
    pc.in_bytes -= baseline_[i].in_bytes.load();
    pc.out_packets -= baseline_[i].out_packets.load();
    pc.out_bytes -= baseline_[i].out_bytes.load();
    s.ports.push_back(pc);
  }
  for (int w = 0; w < config_.workers; ++w) {
    const WorkerCounters& c = counters_[w];
    for (size_t d = 0; d < kNumDrops; ++d) s.drops[d] += c.drops[d].load();
    s.rx_datagrams += c.rx_datagrams.load();
    s.rx_bytes += c.rx_bytes.load();
    s.tx_datagrams += c.tx_datagrams.load();
    s.tx_bytes += c.tx_bytes.load();
    s.tx_sends += c.tx_sends.load();
    s.coalesced_writes += c.coalesced_writes.load();
    s.polled_batches += c.polled_batches.load();
    s.woken_batches += c.woken_batches.load();
  }
  qsbr_.Reclaim();
  return s;
}

}  // namespace overlay
