// A packet-level network in ns-3 for the coordinator (tansiv-ns3.h). Builds against Debian's
// ns-3: 3.37 (Debian 12, C++17) and 3.43 (Debian 13, C++20).
//
// ns-3 runs no IP here: each link is two nodes and a SimpleNetDevice channel, and this file
// forwards each frame from the end of one hop into the next hop's queue (a tag on the packet
// says which frame, and which hop). What it keeps of each frame in flight is what bounds its
// delivery from below (next_delivery), so that the coordinator's rounds end where a delivery
// may happen, not at every event of the network.
extern "C" {
#include "tansiv-ns3.h"
}

#include "ns3/core-module.h"
#include "ns3/network-module.h"
#include "ns3/traffic-control-module.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

using namespace ns3;

namespace {

// ---- a frame on its way ------------------------------------------------------------------

class FrameTag : public Tag {
  public:
    uint64_t id = 0;
    uint16_t hop = 0;

    static TypeId GetTypeId()
    {
        static TypeId tid = TypeId("tansiv::FrameTag").SetParent<Tag>().AddConstructor<FrameTag>();
        return tid;
    }
    TypeId GetInstanceTypeId() const override { return GetTypeId(); }
    uint32_t GetSerializedSize() const override { return 10; }
    void Serialize(TagBuffer i) const override
    {
        i.WriteU64(id);
        i.WriteU16(hop);
    }
    void Deserialize(TagBuffer i) override
    {
        id = i.ReadU64();
        hop = i.ReadU16();
    }
    void Print(std::ostream& os) const override { os << "frame " << id << " hop " << hop; }
};

// A queue discipline's item without IP: FQ-CoDel's flows are the caller's (a VM's frames: IP
// addresses, protocol and ports), or the (source, destination) pairs; no ECN, so AQMs drop.
class FrameItem : public QueueDiscItem {
  public:
    FrameItem(Ptr<Packet> p, const Address& to, uint16_t proto, uint32_t src, uint32_t dst,
              uint32_t flow)
        : QueueDiscItem(p, to, proto), m_src(src), m_dst(dst), m_flow(flow)
    {
    }
    void AddHeader() override {}
    bool Mark() override { return false; }
    uint32_t Hash(uint32_t perturbation) const override
    {
        uint32_t key[4] = {m_flow, m_flow ? 0 : m_src, m_flow ? 0 : m_dst, perturbation};
        return Hash32(reinterpret_cast<const char*>(key), sizeof(key));
    }

  private:
    uint32_t m_src, m_dst, m_flow;
};

const uint16_t PROTOCOL = 0x0800;
const uint32_t MAX_FRAME = 65535; // SimpleNetDevice's MTU (its default, and its largest)

struct Hop {
    uint32_t link;
    uint8_t dir;
};

struct Route {
    std::vector<Hop> hops;
    std::vector<uint64_t> latency_from;   // latency of hops k.. (ns)
    std::vector<double> ns_per_byte_from; // serialization of hops k.., per byte
};

struct Dir {
    Ptr<NetDevice> tx, rx;
    Ptr<TrafficControlLayer> tc;
    Ptr<QueueDisc> qdisc; // null: DropTail, the device's queue alone
    Address to;
    DataRate rate;
    uint64_t busy_until = 0;       // the end of its current transmission (ns)
    std::multiset<uint64_t> queued; // the remaining time (below) of each frame in its queue
};

struct Link {
    uint64_t latency;
    Dir dir[2];
};

enum State { QUEUED, SENDING };

struct Frame {
    uint32_t src, dst, size, flow;
    const Route* route;
    uint16_t hop;
    State state;
    uint64_t remaining; // QUEUED: the least time from the start of this hop to delivery
};

struct Bound {
    uint64_t at, id;
    uint16_t hop;
    bool operator>(const Bound& o) const { return at > o.at || (at == o.at && id > o.id); }
};

struct Model {
    std::vector<std::unique_ptr<Link>> links;
    std::map<std::pair<uint32_t, uint32_t>, Route> routes;
    std::unordered_map<uint64_t, Frame> inflight;
    // Frames being sent or on the wire: the date they can be delivered at the earliest
    // (exact on their last hop). Entries of frames that moved on are dropped when seen.
    std::priority_queue<Bound, std::vector<Bound>, std::greater<Bound>> sending;
    std::set<Dir*> busy; // directions with frames queued
    std::deque<tsv_ns3_fate> fates;
};

Model* g = nullptr;

uint64_t now_ns() { return static_cast<uint64_t>(Simulator::Now().GetTimeStep()); }

// Serialization of size bytes over hops k.. at the least (ns-3 rounds each hop's to the ns).
uint64_t serialization_from(const Route& r, uint16_t k, uint32_t size)
{
    double t = std::floor(size * r.ns_per_byte_from[k]) - (r.hops.size() - k);
    return t > 0 ? static_cast<uint64_t>(t) : 0;
}

// ---- fates ---------------------------------------------------------------------------------

void leave_queue(Frame& f)
{
    if (f.state != QUEUED)
        return;
    const Hop& h = f.route->hops[f.hop];
    Dir& d = g->links[h.link]->dir[h.dir];
    d.queued.erase(d.queued.find(f.remaining));
    if (d.queued.empty())
        g->busy.erase(&d);
}

void fate(uint64_t id, int kind, const char* detail)
{
    auto it = g->inflight.find(id);
    if (it == g->inflight.end())
        return;
    Frame& f = it->second;
    tsv_ns3_fate out{};
    out.id = id;
    out.time_ns = now_ns();
    out.kind = kind;
    const Hop& h = f.route->hops[f.hop];
    out.link = h.link;
    out.dir = h.dir;
    if (detail)
        std::snprintf(out.detail, sizeof(out.detail), "%s", detail);
    leave_queue(f);
    g->fates.push_back(out);
    g->inflight.erase(it);
}

void dropped(Ptr<const Packet> p, int kind, const char* detail)
{
    FrameTag t;
    if (p->PeekPacketTag(t))
        fate(t.id, kind, detail);
}

// ---- hop by hop ----------------------------------------------------------------------------

void enter_hop(Ptr<Packet> p, uint64_t id, Frame& f, uint16_t hop)
{
    const Route& r = *f.route;
    const Hop& h = r.hops[hop];
    Dir& d = g->links[h.link]->dir[h.dir];
    f.hop = hop;
    f.state = QUEUED;
    f.remaining = r.latency_from[hop] + serialization_from(r, hop, f.size);
    d.queued.insert(f.remaining);
    g->busy.insert(&d);
    FrameTag t;
    t.id = id;
    t.hop = hop;
    p->ReplacePacketTag(t);
    if (d.qdisc)
        d.tc->Send(d.tx, Create<FrameItem>(p, d.to, PROTOCOL, f.src, f.dst, f.flow));
    else
        d.tx->Send(p, d.to, PROTOCOL); // a full queue says so by its drop trace
}

// The device took a frame from its queue: it is on the wire until now + its transmission.
void started(Dir* d, uint32_t link, Ptr<const Packet> p)
{
    FrameTag t;
    if (!p->PeekPacketTag(t))
        return;
    auto it = g->inflight.find(t.id);
    if (it == g->inflight.end() || it->second.hop != t.hop)
        return;
    Frame& f = it->second;
    uint64_t end = now_ns() + static_cast<uint64_t>(d->rate.CalculateBytesTxTime(p->GetSize())
                                                        .GetTimeStep());
    d->busy_until = end;
    leave_queue(f);
    f.state = SENDING;
    const Route& r = *f.route;
    uint16_t next = t.hop + 1;
    uint64_t at = end + g->links[link]->latency +
                  (next < r.hops.size() ? r.latency_from[next] + serialization_from(r, next, f.size)
                                        : 0);
    g->sending.push(Bound{at, t.id, t.hop});
}

bool received(Ptr<NetDevice>, Ptr<const Packet> p, uint16_t, const Address&)
{
    FrameTag t;
    if (!p->PeekPacketTag(t))
        return true;
    auto it = g->inflight.find(t.id);
    if (it == g->inflight.end())
        return true;
    Frame& f = it->second;
    uint16_t next = t.hop + 1;
    if (next >= f.route->hops.size()) {
        fate(t.id, TSV_NS3_DELIVERED, nullptr);
        return true;
    }
    enter_hop(p->Copy(), t.id, f, next); // stored, forwarded at once
    return true;
}

// A queue discipline's drop: for want of room, or its own decision.
void qdisc_dropped(Dir* d, Ptr<const QueueDiscItem> item, const char* why, bool before)
{
    bool full;
    if (before) {
        QueueSize cur = d->qdisc->GetCurrentSize(), max = d->qdisc->GetMaxSize();
        full = max.GetUnit() == QueueSizeUnit::PACKETS ? cur.GetValue() + 1 > max.GetValue()
                                                       : cur.GetValue() + item->GetSize() >
                                                             max.GetValue();
    } else {
        full = std::strstr(why, "Overlimit") != nullptr; // FQ-CoDel drops a fat flow's head
    }
    dropped(item->GetPacket(), full ? TSV_NS3_QUEUE_FULL : TSV_NS3_AQM, why);
}

const char* const QDISCS[] = {nullptr, "ns3::RedQueueDisc", "ns3::CoDelQueueDisc",
                              "ns3::FqCoDelQueueDisc", "ns3::PieQueueDisc"};

void set_error(char* error, size_t len, const char* what)
{
    if (error && len)
        std::snprintf(error, len, "%s", what);
}

} // namespace

// ---- the C API -----------------------------------------------------------------------------

extern "C" int tsv_ns3_init(uint64_t seed, char* error, size_t error_len)
{
    tsv_ns3_fini();
    if (seed == 0) {
        set_error(error, error_len, "the seed is a whole number from 1");
        return -1;
    }
    g = new Model();
    // Replications differ by ns-3's run number, not its seed (streams of one seed are
    // independent across runs; two seeds' are not guaranteed to be).
    RngSeedManager::SetSeed(1);
    RngSeedManager::SetRun(seed);
    return 0;
}

extern "C" void tsv_ns3_fini(void)
{
    if (!g)
        return;
    Simulator::Destroy();
    delete g;
    g = nullptr;
}

extern "C" int tsv_ns3_add_link(uint32_t id, uint64_t bandwidth_Bps, uint64_t latency_ns,
                                int queue, uint64_t queue_size, int in_packets, double loss,
                                char* error, size_t error_len)
{
    if (!g || id != g->links.size() || bandwidth_Bps == 0 || queue < TSV_NS3_DROPTAIL ||
        queue > TSV_NS3_PIE || !(loss >= 0 && loss < 1)) {
        set_error(error, error_len, "bad link");
        return -1;
    }
    if (queue == TSV_NS3_FQ_CODEL && !in_packets) {
        set_error(error, error_len, "fq_codel's size is in packets (ns-3 has no byte limit for it)");
        return -1;
    }
    // The direction's whole buffer: DropTail is the device's queue alone; a discipline gets
    // the size but one packet, which waits in the device's queue.
    bool qdisc = queue != TSV_NS3_DROPTAIL;
    if (qdisc && in_packets && queue_size < 2) {
        set_error(error, error_len, "a queue discipline needs a size of 2 packets or more");
        return -1;
    }
    if (queue_size == 0) {
        set_error(error, error_len, "a queue size of 0");
        return -1;
    }
    QueueSize whole(in_packets ? QueueSizeUnit::PACKETS : QueueSizeUnit::BYTES,
                    static_cast<uint32_t>(queue_size));
    QueueSize device = qdisc ? QueueSize(QueueSizeUnit::PACKETS, 1) : whole;
    QueueSize discipline = qdisc && in_packets
                               ? QueueSize(QueueSizeUnit::PACKETS, queue_size - 1)
                               : whole;

    auto link = std::make_unique<Link>();
    link->latency = latency_ns;
    Ptr<Node> ends[2] = {CreateObject<Node>(), CreateObject<Node>()};
    SimpleNetDeviceHelper h;
    h.SetDeviceAttribute("DataRate", DataRateValue(DataRate(bandwidth_Bps * 8)));
    h.SetChannelAttribute("Delay", TimeValue(NanoSeconds(latency_ns)));
    h.SetQueue("ns3::DropTailQueue<Packet>", "MaxSize", QueueSizeValue(device));
    h.SetNetDevicePointToPointMode(true);
    if (!qdisc)
        h.DisableFlowControl(); // no queue discipline to wake (3.43 would add an event a frame)
    NetDeviceContainer devs = h.Install(NodeContainer(ends[0], ends[1]));
    for (uint8_t k = 0; k < 2; k++) {
        Dir& d = link->dir[k];
        Dir* dp = &d;
        d.tx = devs.Get(k);
        d.rx = devs.Get(1 - k);
        d.to = d.rx->GetAddress();
        d.rate = DataRate(bandwidth_Bps * 8);
        int64_t streams = (static_cast<int64_t>(id) * 2 + k) * 4; // fixed per link, direction
        if (loss > 0) {
            Ptr<RateErrorModel> em = CreateObject<RateErrorModel>();
            em->SetUnit(RateErrorModel::ERROR_UNIT_PACKET);
            em->SetRate(loss);
            em->AssignStreams(streams);
            d.rx->SetAttribute("ReceiveErrorModel", PointerValue(em));
        }
        d.rx->SetReceiveCallback(MakeCallback(&received));
        d.rx->TraceConnectWithoutContext(
            "PhyRxDrop", Callback<void, Ptr<const Packet>>([](Ptr<const Packet> p) {
                dropped(p, TSV_NS3_LOSS, "lost (the link's loss probability)");
            }));
        PointerValue txq;
        d.tx->GetAttribute("TxQueue", txq);
        Ptr<Queue<Packet>> q = txq.Get<Queue<Packet>>();
        q->TraceConnectWithoutContext(
            "DropBeforeEnqueue", Callback<void, Ptr<const Packet>>([](Ptr<const Packet> p) {
                dropped(p, TSV_NS3_QUEUE_FULL, "queue full");
            }));
        q->TraceConnectWithoutContext(
            "Dequeue", Callback<void, Ptr<const Packet>>(
                           [dp, id](Ptr<const Packet> p) { started(dp, id, p); }));
        if (!qdisc)
            continue;
        d.tc = CreateObject<TrafficControlLayer>();
        ends[k]->AggregateObject(d.tc);
        ObjectFactory f;
        f.SetTypeId(QDISCS[queue]);
        f.Set("MaxSize", QueueSizeValue(discipline));
        d.qdisc = f.Create<QueueDisc>();
        if (d.qdisc->GetMaxSize().GetValue() != discipline.GetValue()) {
            set_error(error, error_len, "the queue discipline refuses this size");
            return -1;
        }
        if (Ptr<RedQueueDisc> red = DynamicCast<RedQueueDisc>(d.qdisc))
            red->AssignStreams(streams + 1);
        if (Ptr<PieQueueDisc> pie = DynamicCast<PieQueueDisc>(d.qdisc))
            pie->AssignStreams(streams + 1);
        d.tc->SetRootQueueDiscOnDevice(d.tx, d.qdisc);
        d.qdisc->TraceConnectWithoutContext(
            "DropBeforeEnqueue",
            Callback<void, Ptr<const QueueDiscItem>, const char*>(
                [dp](Ptr<const QueueDiscItem> it, const char* why) {
                    qdisc_dropped(dp, it, why, true);
                }));
        d.qdisc->TraceConnectWithoutContext(
            "DropAfterDequeue",
            Callback<void, Ptr<const QueueDiscItem>, const char*>(
                [dp](Ptr<const QueueDiscItem> it, const char* why) {
                    qdisc_dropped(dp, it, why, false);
                }));
    }
    // Now, not in the initialisation events ns-3 would schedule at the current time.
    ends[0]->Initialize();
    ends[1]->Initialize();
    g->links.push_back(std::move(link));
    return 0;
}

extern "C" int tsv_ns3_add_route(uint32_t src, uint32_t dst, uint32_t n, const uint32_t* links,
                                 const uint8_t* dirs)
{
    if (!g || n == 0 || n > 65535)
        return -1;
    Route r;
    r.latency_from.assign(n + 1, 0);
    r.ns_per_byte_from.assign(n + 1, 0.0);
    for (uint32_t k = 0; k < n; k++) {
        if (links[k] >= g->links.size() || dirs[k] > 1)
            return -1;
        r.hops.push_back(Hop{links[k], dirs[k]});
    }
    for (uint32_t k = n; k-- > 0;) {
        const Link& l = *g->links[links[k]];
        r.latency_from[k] = r.latency_from[k + 1] + l.latency;
        r.ns_per_byte_from[k] =
            r.ns_per_byte_from[k + 1] + 8e9 / l.dir[dirs[k]].rate.GetBitRate();
    }
    g->routes[{src, dst}] = std::move(r);
    return 0;
}

extern "C" int tsv_ns3_run_until(uint64_t time_ns)
{
    if (!g || time_ns < now_ns())
        return -1;
    // Simulator::Run until a Stop event at time_ns; events that events at time_ns schedule at
    // time_ns (a queue discipline's wake-up, a hop of no latency) come after it: run those
    // too, until a Stop is the only event left at time_ns.
    Simulator::Stop(NanoSeconds(static_cast<int64_t>(time_ns - now_ns())));
    Simulator::Run();
    uint64_t before;
    do {
        before = Simulator::GetEventCount();
        Simulator::Stop(Seconds(0));
        Simulator::Run();
    } while (Simulator::GetEventCount() - before > 1);
    return 0;
}

extern "C" uint64_t tsv_ns3_now_ns(void) { return g ? now_ns() : 0; }

extern "C" int tsv_ns3_send(uint32_t src, uint32_t dst, uint32_t size, uint64_t time_ns,
                            uint64_t id, uint32_t flow)
{
    if (!g)
        return -1;
    auto r = g->routes.find({src, dst});
    if (r == g->routes.end())
        return -1;
    if (time_ns < now_ns() || tsv_ns3_run_until(time_ns))
        return -2;
    if (size > MAX_FRAME)
        return -3;
    Frame& f = g->inflight[id];
    f = Frame{src, dst, size, flow, &r->second, 0, QUEUED, 0};
    enter_hop(Create<Packet>(size), id, f, 0);
    return 0;
}

extern "C" uint64_t tsv_ns3_next_delivery_ns(void)
{
    if (!g)
        return UINT64_MAX;
    uint64_t next = UINT64_MAX;
    while (!g->sending.empty()) {
        const Bound& b = g->sending.top();
        auto it = g->inflight.find(b.id);
        if (it != g->inflight.end() && it->second.hop == b.hop && it->second.state == SENDING) {
            next = b.at;
            break;
        }
        g->sending.pop(); // delivered, dropped, or on a later hop
    }
    uint64_t now = now_ns();
    for (Dir* d : g->busy) {
        uint64_t start = d->busy_until > now ? d->busy_until : now;
        uint64_t at = start + *d->queued.begin();
        if (at < next)
            next = at;
    }
    return next;
}

extern "C" int tsv_ns3_fates(tsv_ns3_fate* out, int max)
{
    int n = 0;
    while (g && n < max && !g->fates.empty()) {
        out[n++] = g->fates.front();
        g->fates.pop_front();
    }
    return n;
}

extern "C" int tsv_ns3_in_flight(void) { return g ? static_cast<int>(g->inflight.size()) : 0; }

extern "C" int tsv_ns3_cancel_all(uint64_t* ids, int max)
{
    if (!g)
        return 0;
    std::vector<uint64_t> all;
    for (auto& kv : g->inflight)
        all.push_back(kv.first);
    std::sort(all.begin(), all.end());
    int n = 0;
    for (uint64_t id : all)
        if (n < max)
            ids[n++] = id;
    g->inflight.clear(); // their packets die with the simulator
    g->busy.clear();
    return static_cast<int>(all.size());
}
