/*
 * registry.c - the table of every component type the collector knows.
 *
 * Adding a component is one file in receiver/, processors/, exporter/ or
 * extension/ that defines its factory, and one line in a table below.
 */
#include "core/component.h"

#include <string.h>

extern const rc_receiver_factory rc_otlp_receiver_factory;
extern const rc_processor_factory rc_batch_processor_factory;
extern const rc_processor_factory rc_cost_processor_factory;
extern const rc_processor_factory rc_customer_processor_factory;
extern const rc_exporter_factory rc_file_exporter_factory;
extern const rc_exporter_factory rc_debug_exporter_factory;
extern const rc_exporter_factory rc_nop_exporter_factory;
extern const rc_exporter_factory rc_respan_exporter_factory;
extern const rc_exporter_factory rc_otlp_exporter_factory;
extern const rc_exporter_factory rc_otlphttp_exporter_factory;
extern const rc_exporter_factory rc_usage_exporter_factory;
extern const rc_extension_factory rc_health_check_extension_factory;
extern const rc_extension_factory rc_respan_api_extension_factory;

static const rc_receiver_factory *const receivers[] = {
    &rc_otlp_receiver_factory,
};

static const rc_processor_factory *const processors[] = {
    &rc_batch_processor_factory,
    &rc_customer_processor_factory,
    &rc_cost_processor_factory,
};

/* One line per exporter, so that adding one stays a one-line change
 * (clang-format would pack six entries into a grid). */
/* clang-format off */
static const rc_exporter_factory *const exporters[] = {
    &rc_file_exporter_factory,
    &rc_debug_exporter_factory,
    &rc_nop_exporter_factory,
    &rc_respan_exporter_factory,
    &rc_otlp_exporter_factory,
    &rc_otlphttp_exporter_factory,
    &rc_usage_exporter_factory,
};
/* clang-format on */

static const rc_extension_factory *const extensions[] = {
    &rc_health_check_extension_factory,
    &rc_respan_api_extension_factory,
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define FIND(table, type)                                                                          \
    do {                                                                                           \
        for (size_t i = 0; i < COUNT(table); i++)                                                  \
            if (strcmp(table[i]->type, type) == 0) return table[i];                                \
        return NULL;                                                                               \
    } while (0)

const rc_receiver_factory *rc_find_receiver(const char *type)
{
    FIND(receivers, type);
}

const rc_processor_factory *rc_find_processor(const char *type)
{
    FIND(processors, type);
}

const rc_exporter_factory *rc_find_exporter(const char *type)
{
    FIND(exporters, type);
}

const rc_extension_factory *rc_find_extension(const char *type)
{
    FIND(extensions, type);
}

#define LIST(table)                                                                                \
    do {                                                                                           \
        size_t n = 0;                                                                              \
        out[0] = '\0';                                                                             \
        for (size_t i = 0; i < COUNT(table); i++) {                                                \
            size_t l = strlen(table[i]->type);                                                     \
            if (n + l + 3 >= sizeof out) break;                                                    \
            if (n) {                                                                               \
                memcpy(out + n, ", ", 2);                                                          \
                n += 2;                                                                            \
            }                                                                                      \
            memcpy(out + n, table[i]->type, l + 1);                                                \
            n += l;                                                                                \
        }                                                                                          \
        return out;                                                                                \
    } while (0)

const char *rc_list_types(char kind)
{
    static _Thread_local char out[512];
    switch (kind) {
    case 'r':
        LIST(receivers);
    case 'p':
        LIST(processors);
    case 'e':
        LIST(exporters);
    default:
        LIST(extensions);
    }
}
