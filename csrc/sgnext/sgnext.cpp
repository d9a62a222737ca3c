// Next-event date of the SimGrid engine, computed the way the engine computes its own next
// step (EngineImpl::solve): every model whose next_occurring_event is idempotent, plus the
// kernel timers. Builds against SimGrid 3.32 and 4.x.
#include <simgrid/kernel/Timer.hpp>
#include <simgrid/kernel/resource/Model.hpp>
#include <simgrid/s4u/Engine.hpp>

extern "C" double tsv_sg_next_event(void)
{
    const auto* engine = simgrid::s4u::Engine::get_instance();
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
