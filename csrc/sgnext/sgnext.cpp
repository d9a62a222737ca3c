// What the Python bindings of SimGrid do not give (tansiv-sgnext.h). Builds against SimGrid
// 3.32 (Debian 12) and 4.x (Debian 13).
extern "C" {
#include "tansiv-sgnext.h"
}

#include <simgrid/kernel/Timer.hpp>
#include <simgrid/kernel/resource/Model.hpp>
#include <simgrid/s4u/Comm.hpp>
#include <simgrid/s4u/Engine.hpp>
#include <simgrid/s4u/Host.hpp>
#include <simgrid/s4u/Link.hpp>
#include <simgrid/version.h> // SIMGRID_VERSION_MAJOR: after the others (3.32's needs them)

#include <algorithm>
#include <cstring>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#ifndef SIMGRID_VERSION_MAJOR
#error "SimGrid's version is unknown: the completion signal differs between 3.x and 4.x"
#endif

namespace sg4 = simgrid::s4u;

extern "C" double tsv_sg_next_event(void)
{
    const auto* engine = sg4::Engine::get_instance();
    const double now   = engine->get_clock();
    double next        = -1.0;
    for (auto* model : engine->get_all_models()) {
        // Non-idempotent models (ns-3) would advance when asked: leave them alone.
        if (not model->next_occurring_event_is_idempotent())
            continue;
        const double delta = model->next_occurring_event(now);
        if (delta >= 0.0 && (next < 0.0 || now + delta < next))
            next = now + delta;
    }
    const double timer = simgrid::kernel::timer::Timer::next();
    if (timer >= 0.0 && (next < 0.0 || timer < next))
        next = timer;
    return next;
}

// ---- transfers -------------------------------------------------------------------------------

namespace {
struct Done {
    uint64_t id;
    double date;
    sg4::CommPtr comm; // released when read: not from inside SimGrid's own callback
};
std::unordered_map<const sg4::Activity*, std::pair<uint64_t, sg4::CommPtr>> in_flight;
std::deque<Done> done;

void on_completion(const sg4::Activity& activity)
{
    auto it = in_flight.find(&activity);
    if (it == in_flight.end())
        return; // not one of ours
    done.push_back({it->second.first, sg4::Engine::get_clock(), std::move(it->second.second)});
    in_flight.erase(it);
}

void watch_completions()
{
    static bool watching = false;
    if (watching)
        return;
    watching = true;
#if SIMGRID_VERSION_MAJOR >= 4
    sg4::Comm::on_completion_cb([](const sg4::Comm& c) { on_completion(c); });
#else
    sg4::Activity::on_completion_cb(on_completion);
#endif
}
} // namespace

extern "C" int tsv_sg_send(const char* src, const char* dst, uint64_t bytes, uint64_t id)
{
    auto* engine = sg4::Engine::get_instance();
    sg4::Host* from = engine->host_by_name_or_null(src);
    sg4::Host* to   = engine->host_by_name_or_null(dst);
    if (from == nullptr || to == nullptr)
        return -1;
    watch_completions();
    sg4::CommPtr comm = sg4::Comm::sendto_async(from, to, bytes);
    in_flight.emplace(comm.get(), std::make_pair(id, comm));
    return 0;
}

extern "C" int tsv_sg_completed(uint64_t* ids, double* dates, int max)
{
    int n = 0;
    while (n < max && not done.empty()) {
        ids[n]   = done.front().id;
        dates[n] = done.front().date;
        done.pop_front();
        n++;
    }
    return n;
}

extern "C" const char* tsv_sg_link_property(const char* link, const char* key)
{
    const sg4::Link* l = sg4::Link::by_name_or_null(link);
    return l ? l->get_property(key) : nullptr;
}

extern "C" size_t tsv_sg_link_property_names(const char* link, char* out, size_t len)
{
    const sg4::Link* l = sg4::Link::by_name_or_null(link);
    if (l == nullptr || l->get_properties() == nullptr)
        return 0;
    std::vector<std::string> names;
    for (const auto& kv : *l->get_properties())
        names.push_back(kv.first);
    std::sort(names.begin(), names.end());
    size_t need = 0;
    for (const auto& n : names) {
        if (need + n.size() + 1 <= len)
            std::memcpy(out + need, n.c_str(), n.size() + 1);
        need += n.size() + 1;
    }
    return need;
}

extern "C" int tsv_sg_in_flight(void)
{
    return static_cast<int>(in_flight.size());
}

extern "C" int tsv_sg_cancel_all(uint64_t* ids, int max)
{
    int n = 0;
    // Moved out first: a cancel may call back into on_completion.
    auto all = std::move(in_flight);
    in_flight.clear();
    for (auto& [activity, entry] : all) {
        if (n < max)
            ids[n++] = entry.first;
        entry.second->cancel();
    }
    done.clear();
    return n;
}
