/** The data pipeline: generated sources, Criteo parsing and preprocessing, the Arrow cache. */
export type { Batch } from "./batch.ts";
export { DataError, type BatchOptions, type DataSource, type SplitName } from "./source.ts";
export type { BagOptions } from "./bags.ts";
export { randomSource, type RandomSourceOptions } from "./random.ts";
export { syntheticSource, makeTeacher, type IndexDistribution, type SyntheticSourceOptions, type Teacher, type TeacherOptions } from "./synthetic.ts";
export { ZipfSampler } from "./zipf.ts";
export { parseStackDistanceDist, parseTraceBinary, parseTraceText, profileTrace, TraceGenerator, type StackDistanceDist } from "./trace.ts";
export {
  parseCriteo, CriteoFormatError, MalformedRowError, CRITEO_CSV_HEADER, CRITEO_NUM_CAT, CRITEO_NUM_DENSE,
  type CriteoFormat, type MalformedRow, type ParseOptions, type ParseStats, type RowBlock,
} from "./criteo_parse.ts";
export { preprocessCriteo, type PreprocessOptions, type PreprocessProgress, type PreprocessReport } from "./preprocess.ts";
export { arrowCacheSource, daySplitRange, kaggleDays, readManifest, type ArrowCacheOptions, type ArrowCacheSource, type CacheManifest, type RandomSplit } from "./arrow_cache.ts";
export { bytesSource, fileSource, hostFs, memoryFs, type ByteSource, type DataFs, type FileWriter } from "./fs.ts";
