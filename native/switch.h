// The switch: ports (pod TAPs), remote endpoints behind peer VTEPs, VNI policy, counters, and
// the packet threads that forward between them. The control methods are called from one
// thread (Node's main thread, through addon.cc); each builds and publishes a new table version
// (see the thread-safety contract in tables.h).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "qsbr.h"
#include "tables.h"
#include "underlay.h"

namespace overlay {

class Worker;

struct SwitchConfig {
  uint32_t underlay_ip = 0;  // network order
  uint16_t port = kVxlanPort;
  std::string netns;
  int workers = 1;
  bool offloads = true;
  int underlay_mtu = 1500;
  // Bound of each packet thread's adaptive poll window (poll_window.h), microseconds; 0 = off.
  uint32_t poll_us = 0;
};

struct PortConfig {
  std::string name;
  std::string netns;
  uint32_t vni = 0;
  Mac mac = 0;
  uint32_t ip = 0;
  PortKind kind = PortKind::kPod;
  bool persistent = false;
  int mtu = 1450;
  uint64_t rate_bits_per_sec = 0;
};

struct PortCounterSnapshot {
  uint32_t id, vni;
  std::string name;
  uint64_t in_packets, in_bytes, out_packets, out_bytes;
};

struct CounterSnapshot {
  std::vector<PortCounterSnapshot> ports;
  uint64_t drops[kNumDrops];
  uint64_t rx_datagrams, rx_bytes, tx_datagrams, tx_bytes, tx_sends, coalesced_writes;
  uint64_t polled_batches, woken_batches;
};

// Drop events (droplog.h) as Switch::DropEvents returns them.
struct DropEventsResult {
  std::vector<DropEvent> events;    // oldest first
  uint64_t recording_since_ns = 0;  // when recording last started: drops before it are not there
  uint64_t recording_until_ns = 0;
  uint64_t sampled_out = 0;  // drops not recorded (sampling), since the switch started
};

// Switch::Trace's question: a frame from port `port` to `dst` (network order) over `proto`
// (6, 17 or 1) to `dport`; `next_hop` is the address the pod ARPs for (dst itself on its subnet,
// else its gateway).
struct TraceQuery {
  uint32_t port = 0;
  uint32_t dst = 0;
  uint32_t next_hop = 0;
  uint8_t proto = 1;
  uint16_t sport = 40000;
  uint16_t dport = 0;
};

// Its answer: the steps of the forwarding decision (forward.h) on the synthetic frames.
struct TraceResult {
  Port port;  // the source port as the tables hold it
  bool src_global = false;
  std::vector<uint8_t> arp_frame;  // the ARP request for next_hop, Ethernet onwards
  Drop arp_drop = Drop::kCount;    // kCount: answered, with arp_owner
  Endpoint arp_owner;
  std::vector<uint8_t> frame;  // the IPv4 frame, to the MAC ARP gave (or that the tables hold)
  Drop frame_drop = Drop::kCount;
  bool found = false;  // the frame's destination MAC is in the tables
  Endpoint dst;
  bool dst_global = false;
  std::string dst_port_name;    // for a local destination
  bool dst_peer_known = false;  // for a remote one: its VTEP is a programmed peer
};

struct Features {
  bool vnet_hdr, tso, uso, udp_gso, udp_gro, multi_queue;
  int workers;
  uint32_t poll_us;       // the adaptive poll window's bound; 0 = off
  bool kernel_busy_poll;  // the kernel has epoll busy-poll parameters (probed, not used)
};

class Switch {
 public:
  // Opens the underlay sockets and starts the packet threads; nullptr and *err on failure.
  static std::unique_ptr<Switch> Create(const SwitchConfig& config, std::string* err);
  ~Switch();

  // Control side. Each returns "" or an error message; nothing changes on error.
  std::string AddPort(const PortConfig& config, uint32_t* id);
  // Detaches the port: no packet thread uses it once this returns. Its fds go to *to_close, for
  // the caller to close: closing a TAP is where the kernel tears the device down (10-20 ms),
  // which the caller does off the JS thread.
  std::string RemovePort(uint32_t id, bool destroy, std::vector<int>* to_close);
  std::string SetPortVni(uint32_t id, uint32_t vni);
  std::string SetPortRate(uint32_t id, uint64_t rate_bits_per_sec);
  void SetGlobalVnis(const std::vector<uint32_t>& vnis);
  void SetPeers(const std::vector<std::pair<uint32_t, PeerInfo>>& peers);
  void UpdateRemotes(const std::vector<Endpoint>& add, const std::vector<Mac>& remove);
  void ReplaceRemotes(const std::vector<Endpoint>& all);
  CounterSnapshot Counters();
  // Inspection of the published remote table, for tests and diagnostics; never on the packet
  // path. Each holds mu_ (so the version read cannot be retired meanwhile) and answers through
  // the packet threads' own lookups (RemoteTable::FindMac, FindIp), or lists every entry of both
  // indexes shard by shard (costs the table). False/empty once closed.
  bool FindRemote(Mac mac, Endpoint* out);
  bool FindRemoteByIp(uint32_t ip, Endpoint* out);
  void RemoteEntries(std::vector<Endpoint>* by_mac, std::vector<Endpoint>* by_ip);
  // PolicyTable::Allowed on the published tables: whether a frame from a port on `from` may be
  // delivered to a port on `to`. A read; false once closed.
  bool Reaches(uint32_t from, uint32_t to);
  // Inspection (inspect.cc), never on the packet path and never making it wait. The drop
  // events newer than since_ns, from every packet thread's ring; the read arms recording for
  // arm_ms more (recording costs the packet path only while armed: droplog.h).
  DropEventsResult DropEvents(uint64_t since_ns, uint64_t arm_ms);
  // Runs the forwarding decision (forward.h) on synthetic frames from a port: "" or an error.
  std::string Trace(const TraceQuery& q, TraceResult* out);
  Features GetFeatures() const { return features_; }
  void Close();

  // Packet-thread side.
  const Tables* Enter(int worker) {
    qsbr_.Online(worker);
    return tables_.load();
  }
  void Leave(int worker) { qsbr_.Offline(worker); }
  WorkerCounters& counters(int worker) { return counters_[worker]; }
  TokenBucket& bucket(uint32_t slot) { return buckets_[slot]; }
  uint16_t vxlan_port() const { return config_.port; }
  int underlay_mtu() const { return config_.underlay_mtu; }
  uint32_t poll_us() const { return config_.poll_us; }

 private:
  explicit Switch(const SwitchConfig& config);
  void PublishPorts();
  void PublishRemotes(std::shared_ptr<const RemoteTable> remotes, RetiredShards retired);
  void PublishPolicy();
  // Publishes `next`, then retires the old version and the remote shards `next` replaced.
  void Publish(Tables next, RetiredShards retired = {});

  SwitchConfig config_;
  Features features_{};
  std::mutex mu_;  // control side only; packet threads never take it
  Qsbr qsbr_;
  std::atomic<const Tables*> tables_{nullptr};
  std::unique_ptr<PortTable> ports_;  // the control side's copy, published as PortTable
  uint32_t generation_ = 0;
  RemoteSet remotes_;  // the control side's remotes; owns the published remote shards
  std::vector<std::pair<uint32_t, PeerInfo>> peers_;
  std::vector<uint32_t> global_vnis_;
  UnderlaySockets sockets_;
  std::unique_ptr<WorkerCounters[]> counters_;
  std::unique_ptr<TokenBucket[]> buckets_;
  std::unique_ptr<PortCounters[]> baseline_;  // counters of a slot's earlier occupants
  std::vector<std::unique_ptr<Worker>> workers_;
  bool closed_ = false;
  uint64_t recording_since_ns_ = 0;  // DropEvents: when the recorders were last armed from idle
};

}  // namespace overlay
