-- CloudTrail table for an organization trail (s3://BUCKET/AWSLogs/o-ORGID/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/).
-- Columns: the CloudTrail record as the AWS Athena documentation's CloudTrail table defines it
-- (userIdentity a struct; requestParameters, responseElements, additionalEventData and
-- serviceEventDetails JSON text, read with json_extract / json_extract_scalar).
-- Partitions are projected (no crawler, no MSCK REPAIR, no ALTER TABLE ADD PARTITION):
--   account         enum: the accounts whose logs the table covers
--   region          enum: the regions the trail logs
--   partition_date  date, yyyy/MM/dd, one a day from @START_DATE@ to today
-- Every query should filter partition_date (and account/region where it can): Athena then reads
-- only those days' prefixes. infra/athena/bypass-hunt.sql does.
-- Placeholders, replaced before running (infra/README.md, "Athena: historical hunts"):
--   @TABLE@ (database.table), @TRAIL_BUCKET@ (bucket name, plus its key prefix if the trail has one),
--   @ORG_ID@ (o-xxxxxxxxxx), @ACCOUNT_IDS@ and @REGIONS@ (comma-separated), @START_DATE@ (yyyy/MM/dd).
CREATE EXTERNAL TABLE @TABLE@ (
    eventversion STRING,
    useridentity STRUCT<
        type: STRING,
        principalid: STRING,
        arn: STRING,
        accountid: STRING,
        invokedby: STRING,
        accesskeyid: STRING,
        username: STRING,
        onbehalfof: STRUCT<
            userid: STRING,
            identitystorearn: STRING>,
        sessioncontext: STRUCT<
            attributes: STRUCT<
                mfaauthenticated: STRING,
                creationdate: STRING>,
            sessionissuer: STRUCT<
                type: STRING,
                principalid: STRING,
                arn: STRING,
                accountid: STRING,
                username: STRING>,
            ec2roledelivery: STRING,
            webidfederationdata: STRUCT<
                federatedprovider: STRING,
                attributes: MAP<STRING, STRING>>>>,
    eventtime STRING,
    eventsource STRING,
    eventname STRING,
    awsregion STRING,
    sourceipaddress STRING,
    useragent STRING,
    errorcode STRING,
    errormessage STRING,
    requestparameters STRING,
    responseelements STRING,
    additionaleventdata STRING,
    requestid STRING,
    eventid STRING,
    readonly STRING,
    resources ARRAY<STRUCT<
        arn: STRING,
        accountid: STRING,
        type: STRING>>,
    eventtype STRING,
    apiversion STRING,
    recipientaccountid STRING,
    serviceeventdetails STRING,
    sharedeventid STRING,
    vpcendpointid STRING,
    vpcendpointaccountid STRING,
    eventcategory STRING,
    addendum STRUCT<
        reason: STRING,
        updatedfields: STRING,
        originalrequestid: STRING,
        originaleventid: STRING>,
    sessioncredentialfromconsole STRING,
    edgedevicedetails STRING,
    tlsdetails STRUCT<
        tlsversion: STRING,
        ciphersuite: STRING,
        clientprovidedhostheader: STRING>
)
PARTITIONED BY (account STRING, region STRING, partition_date STRING)
ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://@TRAIL_BUCKET@/AWSLogs/@ORG_ID@/'
TBLPROPERTIES (
    'projection.enabled' = 'true',
    'projection.account.type' = 'enum',
    'projection.account.values' = '@ACCOUNT_IDS@',
    'projection.region.type' = 'enum',
    'projection.region.values' = '@REGIONS@',
    'projection.partition_date.type' = 'date',
    'projection.partition_date.format' = 'yyyy/MM/dd',
    'projection.partition_date.range' = '@START_DATE@,NOW',
    'projection.partition_date.interval' = '1',
    'projection.partition_date.interval.unit' = 'DAYS',
    'storage.location.template' = 's3://@TRAIL_BUCKET@/AWSLogs/@ORG_ID@/${account}/CloudTrail/${region}/${partition_date}'
)
