package platform

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/interfaces/interfacesawscloudwatch"
	"github.com/aws/jsii-runtime-go"

	"github.com/scrapeplatform/platform/infra/stage"
)

// DeadLetterRateExpression is the dead-letter alarm's metric: new dead letters per minute (RATE is per
// second; a purge makes it negative, which never alarms).
const DeadLetterRateExpression = "RATE(dead) * 60"

// WebhookDeadLetterRateExpression is the webhook dead-letter alarm's metric, like DeadLetterRateExpression.
const WebhookDeadLetterRateExpression = "RATE(webhookDead) * 60"

// WebhookDeadLetterQueue is where shared/webhook dead-letters a callback whose retries ran out; the
// queue-depth Lambda publishes its depth as DeadLetterMessages with this Queue dimension.
const WebhookDeadLetterQueue = TaskQueue + ".webhooks.dead"

// JobsAcceptedMetric is the gateway's EMF count of accepted scrapes by Mode ("sync": answered 200 within
// the sync window; "async": 202), dimensions Stage and Mode (the Prometheus counter
// scraping_gateway_jobs_accepted_total{mode}).
const JobsAcceptedMetric = "JobsAccepted"

// DeadLetterWindowMinutes is how long the dead-letter alarm stays in ALARM after the last new dead letter.
const DeadLetterWindowMinutes = 15

type alerting struct {
	topic awssns.Topic
	// pagers are the settings' existing topics (pager, chat integration) every alarm notifies too.
	pagers        []awssns.ITopic
	dashboardName *string
	alarms        []awscloudwatch.Alarm
	// scaleFromZero is the scaling alarm of the step policy (shown on the dashboard, not paged).
	scaleFromZero awscloudwatch.Alarm
}

// newAlerting creates the alarm topic: encrypted with a customer-managed key CloudWatch may use, TLS only,
// with the stage's subscriptions: e-mail addresses from the settings, one from an SSM parameter (resolved
// by CloudFormation at deploy time, so the address lives in the account), and existing topics that every
// alarm notifies as well. stage.Settings.Validate refuses a production stage without any of them.
func newAlerting(st awscdk.Stack, s stage.Settings) *alerting {
	key := awskms.NewKey(st, jsii.String("AlarmTopicKey"), &awskms.KeyProps{
		Description:       jsii.String("Encrypts the alarm topic of scraping-" + s.Name),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     removalPolicy(s),
	})
	// CloudWatch alarms publish to an encrypted topic only if the key lets the service use it.
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarmsPublish"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"),
		Conditions: &map[string]interface{}{"StringEquals": map[string]interface{}{"aws:SourceAccount": st.Account()}},
	}), jsii.Bool(false))
	topic := awssns.NewTopic(st, jsii.String("AlarmTopic"), &awssns.TopicProps{
		DisplayName: jsii.String("scraping-" + s.Name + " alarms"),
		MasterKey:   key,
		EnforceSSL:  jsii.Bool(true),
	})
	o := s.Observability
	for _, email := range o.AlarmEmails {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(email), nil))
	}
	if o.AlarmEmailParameter != "" {
		// A dynamic reference: the deploy fails, saying which parameter is missing, until it exists.
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String("{{resolve:ssm:"+o.AlarmEmailParameter+"}}"), nil))
	}
	a := &alerting{topic: topic, dashboardName: jsii.String("scraping-" + s.Name)}
	for i, arn := range o.AlarmTopicArns {
		a.pagers = append(a.pagers, awssns.Topic_FromTopicArn(st, jsii.String(fmt.Sprintf("AlarmPager%d", i)), jsii.String(arn)))
	}
	return a
}

// alarm creates an alarm that notifies the topic on ALARM and on OK.
func (a *alerting) alarm(st awscdk.Stack, id, description string, metric awscloudwatch.IMetric, opts awscloudwatch.CreateAlarmOptions) awscloudwatch.Alarm {
	opts.AlarmDescription = jsii.String(description)
	if opts.TreatMissingData == "" {
		opts.TreatMissingData = awscloudwatch.TreatMissingData_NOT_BREACHING
	}
	alarm := awscloudwatch.NewAlarm(st, jsii.String(id), &awscloudwatch.AlarmProps{
		Metric:             metric,
		AlarmDescription:   opts.AlarmDescription,
		Threshold:          opts.Threshold,
		ComparisonOperator: opts.ComparisonOperator,
		EvaluationPeriods:  opts.EvaluationPeriods,
		DatapointsToAlarm:  opts.DatapointsToAlarm,
		TreatMissingData:   opts.TreatMissingData,
	})
	for _, t := range append([]awssns.ITopic{a.topic}, a.pagers...) {
		action := awscloudwatchactions.NewSnsAction(t)
		alarm.AddAlarmAction(action)
		alarm.AddOkAction(action)
	}
	a.alarms = append(a.alarms, alarm)
	return alarm
}

func newDashboardAndAlarms(st awscdk.Stack, s stage.Settings, a *alerting, brk *broker, api *api, w *workers, depth *queueDepth) {
	fiveMin := awscdk.Duration_Minutes(jsii.Number(5))
	minute := awscdk.Duration_Minutes(jsii.Number(1))
	m := func(props *awscloudwatch.MetricProps) awscloudwatch.Metric { return awscloudwatch.NewMetric(props) }
	opt := func(period awscdk.Duration, stat string) *awscloudwatch.MetricOptions {
		return &awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String(stat)}
	}

	// API (HTTP API metrics of the $default stage).
	apiRequests := api.stage.MetricCount(opt(fiveMin, "Sum"))
	api4xx := api.stage.MetricClientError(opt(fiveMin, "Sum"))
	api5xx := api.stage.MetricServerError(opt(fiveMin, "Sum"))
	apiLatencyP50 := api.stage.MetricLatency(opt(fiveMin, "p50"))
	apiLatencyP99 := api.stage.MetricLatency(opt(fiveMin, "p99"))
	apiIntegrationP99 := api.stage.MetricIntegrationLatency(opt(fiveMin, "p99"))

	// Lambdas.
	gwErrors := api.fn.MetricErrors(opt(fiveMin, "Sum"))
	gwThrottles := api.fn.MetricThrottles(opt(fiveMin, "Sum"))
	gwInvocations := api.fn.MetricInvocations(opt(fiveMin, "Sum"))
	gwDurationP50 := api.fn.MetricDuration(opt(fiveMin, "p50"))
	gwDurationP99 := api.fn.MetricDuration(opt(fiveMin, "p99"))
	gwConcurrency := api.fn.Metric(jsii.String("ConcurrentExecutions"), opt(minute, "Maximum"))
	qdErrors := depth.fn.MetricErrors(opt(fiveMin, "Sum"))

	// Broker (Amazon MQ's broker-level metrics, and the queue-depth Lambda's view of the nodes).
	mq := func(name string) awscloudwatch.Metric {
		return m(&awscloudwatch.MetricProps{Namespace: jsii.String("AWS/AmazonMQ"), MetricName: jsii.String(name),
			DimensionsMap: &map[string]*string{"Broker": jsii.String(brk.name)}, Statistic: jsii.String("Maximum"), Period: fiveMin})
	}
	connections, channels, consumers := mq("ConnectionCount"), mq("ChannelCount"), mq("ConsumerCount")
	memory := brokerMetric(s, "BrokerMemoryUsedPercent", "Maximum")
	resourceAlarms := brokerMetric(s, "BrokerResourceAlarms", "Maximum")

	// Queue and workers (the queue-depth Lambda's metrics).
	ready := queueMetric(s, "ReadyMessages", "Maximum")
	unacked := queueMetric(s, "UnackedMessages", "Maximum")
	dead := queueMetric(s, "DeadLetterMessages", "Maximum")
	backlog := queueMetric(s, "BacklogPerTask", "Average")
	running := queueMetric(s, "RunningTasks", "Maximum")
	desired := queueMetric(s, "DesiredTasks", "Maximum")
	readySamples := queueMetric(s, "ReadyMessages", "SampleCount")
	webhookDead := m(&awscloudwatch.MetricProps{Namespace: jsii.String(MetricNamespace), MetricName: jsii.String("DeadLetterMessages"),
		DimensionsMap: &map[string]*string{"Stage": jsii.String(s.Name), "Queue": jsii.String(WebhookDeadLetterQueue)},
		Statistic:     jsii.String("Maximum"), Period: minute, Label: jsii.String("webhook dead letters")})
	accepted := func(mode string) awscloudwatch.Metric {
		return m(&awscloudwatch.MetricProps{Namespace: jsii.String(MetricNamespace), MetricName: jsii.String(JobsAcceptedMetric),
			DimensionsMap: &map[string]*string{"Stage": jsii.String(s.Name), "Mode": jsii.String(mode)}, Statistic: jsii.String("Sum"), Period: fiveMin, Label: jsii.String(mode)})
	}
	cpu := w.service.MetricCpuUtilization(opt(fiveMin, "Average"))
	mem := w.service.MetricMemoryUtilization(opt(fiveMin, "Average"))
	outcome := func(status string) awscloudwatch.Metric {
		return m(&awscloudwatch.MetricProps{Namespace: jsii.String(scrapeOutcomeNamespace(s)), MetricName: jsii.String(ScrapeOutcomeMetric),
			DimensionsMap: &map[string]*string{"Status": jsii.String(status)}, Statistic: jsii.String("Sum"), Period: fiveMin, Label: jsii.String(status)})
	}

	// Alarms that page: each one means users see failures or the system lost a safety net.
	gte := awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD
	a.alarm(st, "Api5xxAlarm", "API answered 5xx (503 broker unreachable, 504 no worker in time, 502 handler crash) 5+ times in 5 minutes.",
		api5xx, awscloudwatch.CreateAlarmOptions{Threshold: jsii.Number(5), ComparisonOperator: gte, EvaluationPeriods: jsii.Number(1)})
	a.alarm(st, "GatewayErrorsAlarm", "The gateway Lambda failed invocations (crash or timeout): clients got 502/503.",
		gwErrors, awscloudwatch.CreateAlarmOptions{Threshold: jsii.Number(1), ComparisonOperator: gte, EvaluationPeriods: jsii.Number(1)})
	a.alarm(st, "GatewayThrottlesAlarm", "The gateway Lambda hit its reserved concurrency (api.gatewayReservedConcurrency): requests are refused.",
		gwThrottles, awscloudwatch.CreateAlarmOptions{Threshold: jsii.Number(1), ComparisonOperator: gte, EvaluationPeriods: jsii.Number(1)})
	a.alarm(st, "QueueDepthErrorsAlarm", "The queue-depth Lambda failed: the scaling metrics may be incomplete.",
		qdErrors, awscloudwatch.CreateAlarmOptions{Threshold: jsii.Number(2), ComparisonOperator: gte, EvaluationPeriods: jsii.Number(1)})
	a.alarm(st, "QueueDepthMissingAlarm", "No queue-depth datapoint for 5 minutes: worker autoscaling is blind.",
		readySamples, awscloudwatch.CreateAlarmOptions{Threshold: jsii.Number(1), ComparisonOperator: awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD,
			EvaluationPeriods: jsii.Number(5), TreatMissingData: awscloudwatch.TreatMissingData_BREACHING})
	// New dead letters, not the queue's depth: the queue keeps dead letters for 7 days, so an alarm on its
	// depth would stay red for a week after one poison message. The rate is in ALARM while any of the last
	// DeadLetterWindowMinutes saw the queue grow and returns to OK after as many quiet minutes.
	a.alarm(st, "DeadLettersAlarm", fmt.Sprintf("New tasks reached the dead-letter queue in the last %d minutes (invalid, expired past their deadline, or over the delivery limit). Inspect and replay or purge them (infra/README.md: Runbook, dead letters).", DeadLetterWindowMinutes),
		awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression:   jsii.String(DeadLetterRateExpression),
			UsingMetrics: &map[string]awscloudwatch.IMetric{"dead": dead},
			Label:        jsii.String("new dead letters per minute"),
			Period:       minute,
		}), awscloudwatch.CreateAlarmOptions{Threshold: jsii.Number(0), ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
			EvaluationPeriods: jsii.Number(DeadLetterWindowMinutes), DatapointsToAlarm: jsii.Number(1)})
	// Webhooks whose retries ran out (WEBHOOK_RETRY_TOTAL, 24 h): the receiver never got the job's end.
	a.alarm(st, "WebhookDeadLettersAlarm", fmt.Sprintf("Webhook deliveries reached %s in the last %d minutes: their retries ran out and the receivers never got the job's end. Read the job's webhook.last_error (GET /jobs/{id}), fix the receiver, replay the dead letters (infra/README.md: Runbook, webhook dead letters).", WebhookDeadLetterQueue, DeadLetterWindowMinutes),
		awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression:   jsii.String(WebhookDeadLetterRateExpression),
			UsingMetrics: &map[string]awscloudwatch.IMetric{"webhookDead": webhookDead},
			Label:        jsii.String("new webhook dead letters per minute"),
			Period:       minute,
		}), awscloudwatch.CreateAlarmOptions{Threshold: jsii.Number(0), ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
			EvaluationPeriods: jsii.Number(DeadLetterWindowMinutes), DatapointsToAlarm: jsii.Number(1)})
	a.alarm(st, "BacklogHighAlarm", fmt.Sprintf("Backlog per task stayed above twice the target (%.1f) for 10 minutes: the service is at workers.maxTasks or cannot start tasks.", 2*s.Workers.BacklogPerTaskTarget),
		backlog, awscloudwatch.CreateAlarmOptions{Threshold: jsii.Number(2 * s.Workers.BacklogPerTaskTarget), ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
			EvaluationPeriods: jsii.Number(10)})
	a.alarm(st, "NoWorkersAlarm", "Messages have waited 5 minutes with no worker task running: scaling from zero failed or tasks crash at start.",
		awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression:   jsii.String("IF(running < 1 AND ready >= 1, 1, 0)"),
			UsingMetrics: &map[string]awscloudwatch.IMetric{"running": running, "ready": ready},
			Label:        jsii.String("backlog with no running task"),
			Period:       minute,
		}), awscloudwatch.CreateAlarmOptions{Threshold: jsii.Number(1), ComparisonOperator: gte, EvaluationPeriods: jsii.Number(5)})
	a.alarm(st, "BrokerMemoryAlarm", "A broker node uses 80% of its memory limit; at 100% RabbitMQ blocks every publisher.",
		memory, awscloudwatch.CreateAlarmOptions{Threshold: jsii.Number(80), ComparisonOperator: gte, EvaluationPeriods: jsii.Number(3)})
	a.alarm(st, "BrokerResourceAlarm", "A broker node raised a memory or disk alarm: publishers are blocked, scrapes fail with 503/504.",
		resourceAlarms, awscloudwatch.CreateAlarmOptions{Threshold: jsii.Number(1), ComparisonOperator: gte, EvaluationPeriods: jsii.Number(1)})
	nodes := 1
	if s.Broker.Cluster() {
		nodes = 3
	}
	connLimit := float64(s.Broker.ConnectionLimit() * nodes)
	a.alarm(st, "BrokerConnectionsAlarm", fmt.Sprintf("Broker connections above 80%% of the limit (%d per node × %d): new gateway environments and workers will be refused.", s.Broker.ConnectionLimit(), nodes),
		connections, awscloudwatch.CreateAlarmOptions{Threshold: jsii.Number(0.8 * connLimit), ComparisonOperator: gte, EvaluationPeriods: jsii.Number(1)})

	width := jsii.Number(8)
	graph := func(title string, left []awscloudwatch.IMetric, right []awscloudwatch.IMetric, annotations ...*awscloudwatch.HorizontalAnnotation) awscloudwatch.IWidget {
		p := &awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Left: &left, Width: width, Height: jsii.Number(6)}
		if len(right) > 0 {
			p.Right = &right
		}
		if len(annotations) > 0 {
			p.LeftAnnotations = &annotations
		}
		return awscloudwatch.NewGraphWidget(p)
	}
	row := func(ws ...awscloudwatch.IWidget) *[]awscloudwatch.IWidget { return &ws }
	var alarmRefs []awscloudwatch.IAlarm
	for _, al := range append(a.alarms, a.scaleFromZero) {
		alarmRefs = append(alarmRefs, al)
	}
	awscloudwatch.NewDashboard(st, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DashboardName:   a.dashboardName,
		DefaultInterval: awscdk.Duration_Hours(jsii.Number(3)),
		Widgets: &[]*[]awscloudwatch.IWidget{
			row(awscloudwatch.NewAlarmStatusWidget(&awscloudwatch.AlarmStatusWidgetProps{
				Title: jsii.String("Alarms"), Alarms: alarmRefsOf(alarmRefs), Width: jsii.Number(24), Height: jsii.Number(3),
			})),
			row(
				graph("API requests", []awscloudwatch.IMetric{apiRequests}, nil),
				graph("API errors (4xx, 5xx)", []awscloudwatch.IMetric{api4xx, api5xx}, nil),
				graph("API latency (ms)", []awscloudwatch.IMetric{apiLatencyP50, apiLatencyP99, apiIntegrationP99}, nil,
					&awscloudwatch.HorizontalAnnotation{Value: jsii.Number(30000), Label: jsii.String("API Gateway timeout")}),
			),
			row(
				graph("Gateway Lambda: invocations, errors, throttles", []awscloudwatch.IMetric{gwInvocations}, []awscloudwatch.IMetric{gwErrors, gwThrottles}),
				graph("Gateway Lambda: duration (ms)", []awscloudwatch.IMetric{gwDurationP50, gwDurationP99}, nil),
				graph("Gateway Lambda: concurrency", []awscloudwatch.IMetric{gwConcurrency}, []awscloudwatch.IMetric{qdErrors},
					&awscloudwatch.HorizontalAnnotation{Value: jsii.Number(s.API.GatewayReservedConcurrency), Label: jsii.String("reserved concurrency")}),
			),
			row(
				graph("Broker: connections, channels, consumers", []awscloudwatch.IMetric{connections, channels, consumers}, nil,
					&awscloudwatch.HorizontalAnnotation{Value: jsii.Number(connLimit), Label: jsii.String("connection limit")}),
				graph("Broker: memory used (% of limit), resource alarms", []awscloudwatch.IMetric{memory}, []awscloudwatch.IMetric{resourceAlarms},
					&awscloudwatch.HorizontalAnnotation{Value: jsii.Number(80), Label: jsii.String("alarm")}),
				graph("Dead-letter queue depth", []awscloudwatch.IMetric{dead}, nil),
			),
			row(
				graph("Queue depth: ready, unacknowledged", []awscloudwatch.IMetric{ready, unacked}, nil),
				graph("Backlog per task", []awscloudwatch.IMetric{backlog}, nil,
					&awscloudwatch.HorizontalAnnotation{Value: jsii.Number(s.Workers.BacklogPerTaskTarget), Label: jsii.String("target")}),
				graph("Worker tasks: running, desired", []awscloudwatch.IMetric{running, desired}, nil,
					&awscloudwatch.HorizontalAnnotation{Value: jsii.Number(s.Workers.MaxTasks), Label: jsii.String("maxTasks")}),
			),
			row(
				graph("Scrape and job outcomes", []awscloudwatch.IMetric{outcome("completed"), outcome("failed"), outcome("timeout"), outcome("cancelled")}, nil),
				graph("Worker CPU and memory (%)", []awscloudwatch.IMetric{cpu, mem}, nil),
				graph("Scrapes accepted: sync (200 in the window), async (202)", []awscloudwatch.IMetric{accepted("sync"), accepted("async")}, nil),
			),
			row(
				graph("Webhook dead letters", []awscloudwatch.IMetric{webhookDead}, nil),
			),
		},
	})
}

// alarmRefsOf converts alarms to the widget's reference type.
func alarmRefsOf(alarms []awscloudwatch.IAlarm) *[]interfacesawscloudwatch.IAlarmRef {
	out := make([]interfacesawscloudwatch.IAlarmRef, 0, len(alarms))
	for _, a := range alarms {
		out = append(out, a)
	}
	return &out
}
