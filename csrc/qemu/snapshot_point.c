/* tansiv-snapshot: the device that stops a booting guest at its snapshot point.
 *
 *   -device tansiv-snapshot,id=ID[,iobase=PORT]
 *
 * Every VM of one image boots through the same instructions until its /init reads what is
 * its own (address, command: images/guest/initramfs/init). Just before, /init writes a byte
 * to I/O port 0x520. With this device present (only while tansiv/vm/snapshot.py takes an
 * image's snapshot) the write stops the VM from the vCPU thread, after that very instruction:
 * the state saved then is the same on every build, to the instruction, and its virtual date
 * (QOM property stopped-at, ns of QEMU_CLOCK_VIRTUAL; property clock: the clock now, the same
 * while stopped) is where runs restored from it start.
 * Without the device (cold boots, restored runs) the port is unassigned and the write does
 * nothing, through the same guest instructions.
 *
 * It holds no guest-visible state, hence no migration state: it is left out of restored VMs. */
#include "qemu/osdep.h"
#include "hw/isa/isa.h"
#include "hw/qdev-properties.h"
#include "qapi/visitor.h"
#include "qemu/module.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "qom/object.h"
#include "system/cpus.h"
#include "system/runstate.h"

#define TYPE_TANSIV_SNAPSHOT "tansiv-snapshot"
OBJECT_DECLARE_SIMPLE_TYPE(TansivSnapshotState, TANSIV_SNAPSHOT)

struct TansivSnapshotState {
    ISADevice parent_obj;
    uint32_t iobase;
    MemoryRegion io;
    QEMUBH *stop;        /* see point_write */
    uint64_t stopped_at; /* virtual ns; 0: not reached yet */
};

static void point_stop(void *opaque)
{
    vm_stop(RUN_STATE_PAUSED);
}

static uint64_t point_read(void *opaque, hwaddr addr, unsigned size)
{
    return 0;
}

static void point_write(void *opaque, hwaddr addr, uint64_t val, unsigned size)
{
    TansivSnapshotState *s = opaque;
    if (s->stopped_at)
        return; /* once: a guest that goes on writes into the void */
    /* An I/O instruction ends its block under icount: the clock is exact here. */
    s->stopped_at = (uint64_t)qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    /* The vCPU stops after this instruction, before the next; the VM stops in a bottom half,
     * which the main loop runs first when it gets the BQL back from us. A request to the main
     * loop (vm_stop from here) would be seen at the end of its turn: meanwhile the stopped
     * vCPU would look idle to icount (sleep=off), which would warp virtual time to the next
     * timer and run it. With the bottom half, the state saved is the state at this
     * instruction. */
    cpu_stop_current();
    qemu_bh_schedule(s->stop);
}

static const MemoryRegionOps point_ops = {
    .read = point_read,
    .write = point_write,
    .valid.min_access_size = 1,
    .valid.max_access_size = 4,
    .endianness = DEVICE_LITTLE_ENDIAN,
};

static void point_realize(DeviceState *d, Error **errp)
{
    TansivSnapshotState *s = TANSIV_SNAPSHOT(d);
    s->stop = qemu_bh_new(point_stop, s);
    memory_region_init_io(&s->io, OBJECT(d), &point_ops, s, TYPE_TANSIV_SNAPSHOT, 1);
    memory_region_add_subregion(isa_address_space_io(ISA_DEVICE(d)), s->iobase, &s->io);
}

static void point_get_clock(Object *obj, Visitor *v, const char *name, void *opaque, Error **errp)
{
    uint64_t now = (uint64_t)qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    visit_type_uint64(v, name, &now, errp);
}

static void point_init(Object *obj)
{
    object_property_add(obj, "clock", "uint64", point_get_clock, NULL, NULL, NULL);
    TansivSnapshotState *s = TANSIV_SNAPSHOT(obj);
    object_property_add_uint64_ptr(obj, "stopped-at", &s->stopped_at, OBJ_PROP_FLAG_READ);
}

static const Property point_properties[] = {
    DEFINE_PROP_UINT32("iobase", TansivSnapshotState, iobase, 0x520),
};

static void point_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    dc->realize = point_realize;
    dc->desc = "stops the VM at tansiv's snapshot point (a write to its port)";
    device_class_set_props(dc, point_properties);
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
}

static const TypeInfo point_info = {
    .name = TYPE_TANSIV_SNAPSHOT,
    .parent = TYPE_ISA_DEVICE,
    .instance_size = sizeof(TansivSnapshotState),
    .instance_init = point_init,
    .class_init = point_class_init,
};

static void point_register_types(void)
{
    type_register_static(&point_info);
}

type_init(point_register_types)
