/* The scenarios the fault suite sweeps: each runs once per N in a child (see fault.h). */
#ifndef ALOOP_TEST_FAULT_SCENARIOS_H
#define ALOOP_TEST_FAULT_SCENARIOS_H
#include "fault.h"

void scenario_loop(void);       /* core.c */
void scenario_timers(void);
void scenario_tasks(void);
void scenario_sockops(void);    /* net.c */
void scenario_transport(void);
void scenario_server(void);
void scenario_streams(void);
void scenario_file(void);       /* file.c */
void scenario_sendfile(void);   /* sendfile.c */
void scenario_cf_http(void);    /* charfinder.c */
void scenario_cf_line(void);
void scenario_cf_tcp(void);
/* What the charfinder scenarios compare against, made once without failures; false if it could
 * not be (index_path: the index file to open). */
bool cf_prepare(const char *index_path);

#endif
