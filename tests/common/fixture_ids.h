/* The "ids" array of a golden fixture's inputs.json (malloc'd), for plugin tests. */
#ifndef LOUPE_TEST_FIXTURE_IDS_H
#define LOUPE_TEST_FIXTURE_IDS_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((unused)) static int32_t *fixture_ids(const char *dir, int *n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/inputs.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[1 << 16];
    size_t r = fread(buf, 1, sizeof buf - 1, f);
    buf[r] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    const cJSON *a = cJSON_GetObjectItem(j, "ids");
    *n = cJSON_GetArraySize(a);
    int32_t *ids = malloc(sizeof *ids * (size_t)(*n + 1));
    for (int i = 0; i < *n; i++)
        ids[i] = (int32_t)cJSON_GetArrayItem(a, i)->valuedouble;
    cJSON_Delete(j);
    return ids;
}

#endif
