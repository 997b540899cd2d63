export { renderSvg, toVega, CHART_CONFIG, type ChartSpec, type VegaSpec, type VegaLiteSpec } from './render.js';
export { fiveNumbersSpec, fiveNumbersChart, FIVE_NUMBERS, type FiveNumbersSeries } from './fiveNumbers.js';
export { frontierSpec, frontierChart, frontierReport, type FrontierChartPoint, type FrontierReportPoint } from './frontier.js';
export { layerImportanceSpec, layerImportanceChart, type ImportanceBlock } from './layerImportance.js';
export { stage1CurvesSpec, stage1CurvesChart, scoreTrajectorySpec, scoreTrajectoryChart, type Stage1CurvePoint } from './stage1Curves.js';
export { htmlReport, markdownReport, parseMarkdownTable, REPORT_CSS, type ReportSection, type ReportTable } from './report.js';
export { metricDirection, formatMetric } from './metric.js';
export { esc } from './esc.js';
